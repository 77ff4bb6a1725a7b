"""The TopK sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders") and its sparse decoder product.

An SAE maps an activation x (d_in) to d_sae latents of which at most k are non-zero, and back:

    x_n   = scale * x                                  input normalisation
    pre   = W_enc (x_n - b_dec) + b_enc                 pre-encoder bias subtraction
    z     = ReLU(TopK_k(pre))                           the k largest, the rest 0
    x_hat = (W_dec^T z + b_dec) / scale                 rows of W_dec have unit norm

The ReLU after TopK is the one in Gao et al.'s reference code: it keeps latent values >= 0, so
"active" (z > 0, at most k per token) and "activation mass" are well defined. `scale` makes the
mean squared norm of the training tokens equal to d_in, so one learning rate suits every layer.

`sae_io` saves and loads it, `sae_stream` streams a store's tokens to it, `sae_train` trains it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class TopKSAE(torch.nn.Module):
    def __init__(self, d_in: int, d_sae: int, k: int, tied: bool = False, seed: int = 0):
        super().__init__()
        if not 0 < k <= d_sae:
            raise ValueError(f"k={k} must be between 1 and the dictionary size {d_sae}")
        self.d_in, self.d_sae, self.k, self.tied = d_in, d_sae, k, tied
        generator = torch.Generator().manual_seed(seed)
        w_dec = torch.randn(d_sae, d_in, generator=generator)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w_dec)
        # Gao et al. start the encoder at the decoder's transpose.
        self.W_enc = None if tied else torch.nn.Parameter(w_dec.clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("mean", torch.zeros(d_in))

    @property
    def encoder(self) -> torch.Tensor:
        return self.W_dec if self.tied else self.W_enc

    def pre_acts(self, x_n: torch.Tensor) -> torch.Tensor:
        # W (x - b_dec) written as W x - W b_dec: b_dec's gradient is then a vector product,
        # not a second tokens x d_sae x d_in one.
        return x_n @ self.encoder.T + (self.b_enc - self.encoder @ self.b_dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw activations (tokens x d_in) -> the k latent values (>= 0) and their ids."""
        pre = self.pre_acts(x * self.scale)
        indices = pre.detach().topk(self.k, dim=-1).indices
        return torch.relu(pre.gather(1, indices)), indices

    def decode_normalised(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return SparseDecode.apply(values, indices, self.W_dec) + self.b_dec

    def decode(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.decode_normalised(values, indices) / self.scale

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """Dense latent vectors (tokens x d_sae), zero outside each token's top k."""
        values, indices = self.encode(x)
        return torch.zeros(len(x), self.d_sae, dtype=values.dtype, device=values.device).scatter_(1, indices, values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(x))

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the part of each decoder row's gradient along the row (Gao et al.): the step
        then changes directions, not the unit norms the renormalisation would undo."""
        if self.W_dec.grad is not None and not self.tied:
            grad, rows = self.W_dec.grad, self.W_dec
            grad -= (grad * rows).sum(dim=1, keepdim=True) * rows


class SparseDecode(torch.autograd.Function):
    """values (tokens x k) at latent ids (tokens x k) times the rows of W (d_sae x d_in).

    The forward reads only the k chosen rows per token. The backward is two dense products,
    which on a CPU beat torch's sparse backwards (embedding_bag's per-sample weights, COO)
    several-fold at these sizes."""

    @staticmethod
    def forward(ctx, values, indices, weight):
        ctx.save_for_backward(values, indices, weight)
        return F.embedding_bag(indices, weight, per_sample_weights=values, mode="sum")

    @staticmethod
    def backward(ctx, grad):
        values, indices, weight = ctx.saved_tensors
        grad_values = (grad @ weight.T).gather(1, indices) if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[2]:
            dense = torch.zeros(len(values), len(weight), dtype=values.dtype, device=values.device)
            # scatter_add_: a latent listed twice in a row (never by TopK, possibly by a caller) counts twice.
            grad_weight = dense.scatter_add_(1, indices, values).T @ grad
        return grad_values, None, grad_weight
