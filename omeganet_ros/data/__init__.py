"""Dataset readers and file formats (sequence folders, KITTI, Cityscapes, videos, bags)."""
