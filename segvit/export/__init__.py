"""Exported models: ONNX graphs and model folders (segvit.export.onnx, segvit.export.folder)."""
