"""Command-line tools of bialign_ros (console scripts, also usable via ``ros2 run``)."""
