"""QoS profiles of the node's topics and the matching of a subscription to its publishers."""

from __future__ import annotations

from collections.abc import Iterable

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY_POLICIES = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def policy_name(policy: object) -> str:
    """The lower-case name of a QoS policy value, e.g. ``best_effort``."""
    return getattr(policy, "name", str(policy)).lower()


def match_reliability(publisher_reliabilities: Iterable[str]) -> str:
    """The subscription reliability that best serves the given publishers.

    Reliable only when there is at least one publisher and all of them are reliable: a reliable
    subscription does not match a best-effort publisher, while a best-effort subscription
    matches every publisher. Large frames from a reliable publisher in another process need the
    reliable one under Fast DDS's default transports (best effort then loses them on UDP).
    """
    names = list(publisher_reliabilities)
    return "reliable" if names and all(n == "reliable" for n in names) else "best_effort"


def image_qos(reliability: str, depth: int) -> QoSProfile:
    """QoS of the image (and compressed image) subscription."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=RELIABILITY_POLICIES[reliability],
                      durability=DurabilityPolicy.VOLATILE)


def camera_info_qos() -> QoSProfile:
    """QoS of the camera_info subscription: best effort matches any publisher."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)


def output_qos(depth: int) -> QoSProfile:
    """QoS of the segmentation outputs: reliable, so both reliable and best-effort readers match."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """QoS of the class table: reliable and transient local, so late subscribers get it."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def describe_qos(profile: QoSProfile) -> str:
    """One-line summary of the policies that decide whether a publisher matches."""
    return (f"reliability={policy_name(profile.reliability)}, durability={policy_name(profile.durability)}, "
            f"history={policy_name(profile.history)}, depth={profile.depth}")


def publisher_requirement(profile: QoSProfile) -> str:
    """What a publisher needs to match a subscription with ``profile``, for support messages."""
    if profile.reliability == ReliabilityPolicy.RELIABLE:
        return ("a publisher must be reliable (a best_effort/sensor-data publisher does not match; "
                "set qos_reliability to best_effort or auto for one)")
    return "any publisher matches (best_effort subscription)"
