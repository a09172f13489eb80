from .box_shape import (FEATURE_NAMES, assign_box_labels, box_shape_features,
                        feature_ranges, load_box_clusters, minmax_normalize,
                        nearest_centroid)

__all__ = [
    'FEATURE_NAMES', 'assign_box_labels', 'box_shape_features',
    'feature_ranges', 'load_box_clusters', 'minmax_normalize',
    'nearest_centroid'
]
