#!/usr/bin/env bash
# CI, after `make test`: the node's ROS tests against the real ROS 2 tools (issue 15).
#
# Builds launch, launch_ros, ros2cli, message_filters, cv_bridge and tf2_ros from the source snapshots in
# ../shared/ros2-extras against this clone's .venv (cv_bridge needs Debian's boost-python and OpenCV 4),
# then runs test/test_real_ros.py twice with OMEGANET_REQUIRE_REAL_ROS=1 (a missing tool fails instead of
# skipping): once as after `make setup` (the Makefile's install/, found through the venv's .pth), once from
# a colcon workspace overlay of this package (the README's "In a ROS 2 workspace" path).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
extras=$root/../shared/ros2-extras/build.sh
[ -f "$extras" ] || { echo "real_ros: $extras not found (CI lays ../shared beside the clone)" >&2; exit 1; }
[ -x .venv/bin/python ] || { echo "real_ros: no .venv: run after 'make test'" >&2; exit 1; }
start=$(date +%s)

if ! dpkg -s libboost-python-dev libopencv-dev >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libboost-python-dev libopencv-dev >/dev/null
fi
installed=$(date +%s)

work=$(mktemp -d /tmp/omeganet_real_ros.XXXXXX)
trap 'rm -rf "$work"' EXIT
bash "$extras" "$root" "$work/extras" "$work/overlay"
[ -f "$work/overlay/install/omeganet_ros/share/omeganet_ros/package.xml" ] \
  || { echo "real_ros: the colcon overlay of omeganet_ros did not build ($work/overlay/build.log)" >&2; exit 1; }
built=$(date +%s)

run_tests() {  # ENV_SCRIPT EXPECTED_PREFIX [pytest -k expression]
  ( set +u; source "$1"
    export ROS_LOG_DIR="$work/ros_log" ROS_DOMAIN_ID=$(( 100 + RANDOM % 100 ))
    OMEGANET_REQUIRE_REAL_ROS=1 OMEGANET_EXPECT_PREFIX="$2" \
      python -m pytest test/test_real_ros.py -ra -p no:cacheprovider ${3:+-k "$3"} )
}
run_tests "$work/extras/env.sh" "$root/install/omeganet_ros"
run_tests "$work/overlay/env.sh" "$work/overlay/install/omeganet_ros" "launch"
end=$(date +%s)
echo "real_ros: apt-get $((installed - start)) s, ROS extras + overlay build $((built - installed)) s," \
     "tests $((end - built)) s, total $((end - start)) s"
