"""The three resources (``autoscaler.dev/v1alpha1``) and the backend protocols."""

from autoscaler.api.backends import (
    BackendContext,
    Clock,
    NodeGroupState,
    Observation,
    Producer,
    Provider,
    Signal,
)
from autoscaler.api.common import GROUP_VERSION, Condition, ObjectMeta, key_of
from autoscaler.api.horizontalautoscaler import HorizontalAutoscaler, HorizontalAutoscalerSpec
from autoscaler.api.metricsproducer import MetricsProducer, MetricsProducerSpec
from autoscaler.api.scalablenodegroup import ScalableNodeGroup, ScalableNodeGroupSpec

Resource = ScalableNodeGroup | MetricsProducer | HorizontalAutoscaler
KINDS: dict[str, type[Resource]] = {
    "ScalableNodeGroup": ScalableNodeGroup,
    "MetricsProducer": MetricsProducer,
    "HorizontalAutoscaler": HorizontalAutoscaler,
}

__all__ = [
    "GROUP_VERSION",
    "KINDS",
    "BackendContext",
    "Clock",
    "Condition",
    "HorizontalAutoscaler",
    "HorizontalAutoscalerSpec",
    "MetricsProducer",
    "MetricsProducerSpec",
    "NodeGroupState",
    "ObjectMeta",
    "Observation",
    "Producer",
    "Provider",
    "Resource",
    "ScalableNodeGroup",
    "ScalableNodeGroupSpec",
    "Signal",
    "key_of",
]
