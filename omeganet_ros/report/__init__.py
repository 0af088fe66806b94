"""Replay reports (ROS-free): accuracy via the evaluation suite, timing statistics, pictures, video, report files."""
