"""The package's Python log records on a ROS logger: the node's console and ``/rosout`` show the warnings
of the Segmenter and its backends (an older int8 file run below its calibration size, 8-bit weights on a CPU
without VNNI, ...) as they show the node's own messages."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rclpy.impl.rcutils_logger import RcutilsLogger

PACKAGE_LOGGER = "bialign_ros"
"""The Python logger above every module's own (``logging.getLogger(__name__)``)."""


class RosLogHandler(logging.Handler):
    """Hands each Python log record to a ROS logger at the matching severity (levels between two take the
    lower one)."""

    def __init__(self, logger: RcutilsLogger) -> None:
        super().__init__()
        self.logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        # One call per severity, each on a line of its own: rclpy keeps a call site to one severity.
        try:
            text, level = self.format(record), record.levelno
            if level >= logging.CRITICAL:
                self.logger.fatal(text)
            elif level >= logging.ERROR:
                self.logger.error(text)
            elif level >= logging.WARNING:
                self.logger.warning(text)
            elif level >= logging.INFO:
                self.logger.info(text)
            else:
                self.logger.debug(text)
        except Exception:  # logging must never take the node down
            self.handleError(record)


def forward_package_logs(logger: RcutilsLogger) -> Callable[[], None]:
    """Send the records of the package's Python loggers to ``logger`` instead of Python's stderr
    fallback, at the levels Python lets through (warnings and above unless configured otherwise).
    Returns the function that undoes it."""
    package = logging.getLogger(PACKAGE_LOGGER)
    handler, propagate = RosLogHandler(logger), package.propagate
    package.addHandler(handler)
    package.propagate = False  # a handler on the root logger (a basicConfig) would print each record again

    def restore() -> None:
        package.removeHandler(handler)
        package.propagate = propagate

    return restore
