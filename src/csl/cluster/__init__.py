"""Clustering of feature sets (k-means), used by methods between epochs (PCL)."""

from csl.cluster.kmeans import KMeans, kmeans

__all__ = ["KMeans", "kmeans"]
