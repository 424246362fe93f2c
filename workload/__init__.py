"""The contest workload: the WeNet conformer models, their ONNX export and test data."""
