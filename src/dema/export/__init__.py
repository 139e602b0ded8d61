"""`dema export`: a trained policy as a file another runtime can act with (ONNX), its normalisation inside.

- `graphs.py`: the decision as a traceable PyTorch graph (RNN-like DeMa's recurrent step with its
  Mamba state as explicit tensors; every other model's K-step window), tested equal to the trunk's.
- `onnx.py`: the ONNX model of that graph (torch.onnx's exporter) and the JSON written beside it.
- `check.py`: the exported model through ONNX Runtime beside the PyTorch policy, on random decisions.

It sits between the models and evaluation, whose ONNX Runtime agents (`dema.evaluation.onnx_runtime`)
act through the exported graph; the command is `dema.commands.export`.
"""
