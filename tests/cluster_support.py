"""The local Redis Cluster of the tests: bench/cluster.py's (3 masters, 3 replicas,
AOF always)."""

from bench.cluster import ClusterUnavailable, LocalCluster, cluster_port

__all__ = ["ClusterUnavailable", "LocalCluster", "cluster_port"]
