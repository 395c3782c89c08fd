"""teachable: teach a pretrained CNN by example from a webcam, and see inside it.

The modules follow the data: frames -> backbones -> knn -> project -> session, with projection, activations,
atlas, coach and summary beside them, and views/webapp/cli on top (docs/ARCHITECTURE.md).
"""
