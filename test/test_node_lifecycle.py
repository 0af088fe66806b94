"""omeganet_node's lifecycle over its services: repeated transitions without leaking memory, clean configure failure."""
from __future__ import annotations

import pytest

import node_helpers as h

pytestmark = pytest.mark.usefixtures("rclpy_available")


def _call(client: h.RosClient, srv_type, name: str, request, node: h.NodeProcess, timeout: float = 60.0):
    cli = client.node.create_client(srv_type, name)
    try:
        assert client.spin_until(cli.service_is_ready, 30, node), f"service {name} not available"
        future = cli.call_async(request)
        assert client.spin_until(future.done, timeout, node), f"{name} did not answer"
        return future.result()
    finally:
        client.node.destroy_client(cli)


def _transition(client, node, transition_id: int) -> bool:
    from lifecycle_msgs.srv import ChangeState

    request = ChangeState.Request()
    request.transition.id = transition_id
    return _call(client, ChangeState, f"/{node.name}/change_state", request, node).success


def _state(client, node) -> str:
    from lifecycle_msgs.srv import GetState

    return _call(client, GetState, f"/{node.name}/get_state", GetState.Request(), node).current_state.label


def test_repeated_transitions_release_the_model_and_do_not_leak():
    from lifecycle_msgs.msg import Transition
    from sensor_msgs.msg import Image

    from omeganet_ros.msg import SceneUnderstanding

    frames = h.synthetic_frames(4)
    with h.NodeProcess({"autostart": False}) as node, h.RosClient() as client:
        pub = client.publisher(Image, "image")
        scenes = client.collect(SceneUnderstanding, "scene")
        assert _state(client, node) == "unconfigured"
        rss_after_cleanup = []
        stamp = 1_700_000_000_000_000_000
        for cycle in range(5):
            assert _transition(client, node, Transition.TRANSITION_CONFIGURE)
            assert _state(client, node) == "inactive"
            assert _transition(client, node, Transition.TRANSITION_ACTIVATE)
            client.wait_for_subscriber(pub, node=node)
            assert client.spin_until(lambda: client.node.count_publishers("/scene") > 0, 30, node)
            client.spin_for(0.5)
            before = len(scenes)
            for frame in frames:
                stamp += 100_000_000
                pub.publish(h.image_msg(frame, stamp))
                client.spin_for(0.4)
            assert client.spin_until(lambda: len(scenes) >= before + 1, 30, node), \
                f"cycle {cycle}: no output while active\n{node.output()[-2000:]}"
            assert _transition(client, node, Transition.TRANSITION_DEACTIVATE)
            assert _state(client, node) == "inactive"
            # Inactive: no subscription, no output.
            assert client.spin_until(lambda: pub.get_subscription_count() == 0, 10, node)
            assert _transition(client, node, Transition.TRANSITION_CLEANUP)
            assert _state(client, node) == "unconfigured"
            client.spin_for(0.3)
            rss_after_cleanup.append(node.rss_kib())
        assert node.alive()
        # The first cycles warm allocator pools and DDS; afterwards each cycle must give its memory back.
        growth_mib = (rss_after_cleanup[-1] - rss_after_cleanup[1]) / 1024
        assert growth_mib < 25, f"RSS after each cleanup (KiB): {rss_after_cleanup}"


def test_configure_fails_cleanly_naming_the_model_file_and_the_reason(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from lifecycle_msgs.msg import Transition

    missing = tmp_path / "no_such_model.pt"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with h.NodeProcess({"model": str(missing), "diagnostics_period": 0.2}) as node, h.RosClient() as client:
        client.collect(DiagnosticArray, "/diagnostics")
        assert client.spin_until(lambda: str(missing) in node.output(), 60, node), node.output()
        assert "not found" in node.output()
        assert node.alive() and _state(client, node) == "unconfigured"
        assert client.spin_until(lambda: (client.latest_diagnostics(node.name) or {}).get("_level") == 2, 20, node)
        assert str(missing) in client.latest_diagnostics(node.name)["model"]
        # Retrying configure with another bad file fails again, naming that file; the node stays up.
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        request = SetParameters.Request(parameters=[Parameter(
            name="model", value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(corrupt)))])
        assert _call(client, SetParameters, f"/{node.name}/set_parameters", request, node).results[0].successful
        assert not _transition(client, node, Transition.TRANSITION_CONFIGURE)
        assert client.spin_until(lambda: str(corrupt) in node.output(), 10, node)
        assert "cannot be read safely" in node.output()
        assert node.alive() and _state(client, node) == "unconfigured"


def test_stop_requests_arriving_while_the_node_exits_still_end_with_status_0():
    """ros2 launch's Ctrl-C reaches the node twice (the terminal's process group, then launch's own SIGINT);
    the second may land while the interpreter exits, which restores SIG_DFL for Python-set handlers."""
    import signal
    import time

    with h.NodeProcess({}) as node:
        deadline = time.monotonic() + 60
        while "active" not in node.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "active" in node.output(), node.output()
        deadline = time.monotonic() + 30
        while node.alive() and time.monotonic() < deadline:  # a stop request every 10 ms until it has exited
            node.process.send_signal(signal.SIGINT)
            time.sleep(0.01)
        assert not node.alive(), "the node did not exit within 30 s of repeated SIGINTs"
        assert node.process.returncode == 0, node.output()[-3000:]
