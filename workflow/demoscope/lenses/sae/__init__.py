"""The TopK sparse autoencoder lens: model, checkpoint I/O, token stream, training, features, pools, published SAEs."""
