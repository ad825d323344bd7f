"""On-device personalisation: DCCL (MetaPatch + MoMoDistill) and its ONNX export."""
