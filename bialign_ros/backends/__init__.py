"""Inference backends behind one small interface (:class:`~bialign_ros.backends.base.Runner`)."""
