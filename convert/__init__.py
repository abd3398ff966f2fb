"""The TensorFlow side of dfer-edge: read datasets, extract inputs with dfer_edge's own pipeline,
build and train the Keras model, export TFLite variants and check their parity.

Only this package imports TensorFlow; the runtime (dfer_edge) never does.
"""
