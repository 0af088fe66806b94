"""Python packaging of omeganet_ros (the ROS-free core, its tools and the ROS adapter).

In a ROS 2 workspace, colcon builds the package through CMakeLists.txt (which
also generates the interfaces in msg/); on a bare machine the Makefile installs
this file in editable mode into .venv. Both expose the same console scripts.
"""
from setuptools import find_packages, setup

CONSOLE_SCRIPTS = [
    "omeganet-infer = omeganet_ros.cli.infer:main",
    "omeganet-export = omeganet_ros.cli.export:main",
    "omeganet-bench = omeganet_ros.cli.bench:main",
    "omeganet-synth = omeganet_ros.cli.synth:main",
    "omeganet-eval = omeganet_ros.cli.eval:main",
    "omeganet-train = omeganet_ros.cli.train:main",
    "omeganet-node = omeganet_ros.ros.node:main",
    "omeganet-replay = omeganet_ros.ros.replay:main",
    "omeganet-teacher = omeganet_ros.cli.teacher:main",
    "omeganet-import-official = omeganet_ros.cli.import_official:main",
]

setup(
    name="omeganet_ros",
    version="0.1.0",
    description="ΩNet comprehensive monocular scene understanding (depth, flow, semantics, motion, ego-motion) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["omeganet_ros", "omeganet_ros.*"], exclude=["omeganet_ros.msg"]),
    package_data={"omeganet_ros": ["models/*.pt", "models/*.pth", "models/*.md", "models/LICENSE-*"]},
    install_requires=[
        "torch",
        "numpy>=1.24",
        "opencv-python-headless>=4.8,<5",  # OpenCV 4: what ROS cv_bridge is built against
        "kornia>=0.7",
        "PyYAML>=6.0",
        "tqdm>=4.60",
        "rosbags>=0.10",
        "scikit-learn>=1.3",  # OPTICS: instances of the Moreau model
    ],
    # Only for omeganet-import-official (reading the authors' TF checkpoints); never needed by the engine or node.
    # Optional inference backends (omeganet_ros.backends; backend: auto picks the fastest installed). Neither pulls
    # torch or CUDA: both are CPU wheels from PyPI.
    extras_require={"official": ["tensorflow-cpu>=2.15"],
                    "openvino": ["openvino>=2026.4"],
                    "int8": ["openvino>=2026.4", "nncf>=3.4"],  # precision int8 (quantized at the first export)
                    "onnxruntime": ["onnx>=1.16", "onnxruntime>=1.18"]},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
