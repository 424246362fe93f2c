"""TensorRT side: build configuration, engine builder, runtime, inspector.

Everything that imports `tensorrt` or `cuda` does so inside functions, so the
package imports on a machine without a GPU.
"""
