"""The Behler–Parrinello network: a descriptor of each site's neighbourhood -> a local energy, ``E = sum_i eps_i``.

    x_i   = (D(S)_i - mean) / std                     descriptor features, standardized on the training set
    eps_i = e_ref + scale * MLP(x_i)                  one MLP shared by all sites (translation invariance)
    E     = sum_i eps_i,          h_i = -dE/dS_i      (autograd: :func:`energy_and_fields`)

The energy is summed in float64 (the fields stay in the model's dtype, float32 or float64).

The MLP uses smooth activations (SiLU or tanh) so that the fields, which are first derivatives, are continuous.
``e_ref`` is the mean energy per site of the training labels and ``scale`` the RMS of their transverse fields:
the network learns O(1) fluctuations about a large constant. The descriptor is rebuilt for any lattice of the
same kind (:meth:`SiteEnergyModel.on_lattice`); only the MLP and the normalization buffers are learned and saved.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import NearsightError

ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: a feature whose training-set spread is below this is treated as constant (not standardized)
DEAD_FEATURE_STD = 1e-6


def dtype_from_name(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise NearsightError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]


class SiteMLP(nn.Module):
    """Features ``[..., F]`` -> site energies ``[...]``, with the standardization and energy scale as buffers."""

    def __init__(self, n_features: int, hidden=(32, 32), activation: str = "silu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise NearsightError(f"activation must be one of {', '.join(ACTIVATIONS)} (smooth, so the fields are "
                                 f"continuous), got {activation!r}")
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise NearsightError(f"hidden sizes must be a non-empty list of positive integers, got {hidden!r}")
        self.n_features, self.hidden, self.activation = int(n_features), hidden, activation
        layers, width = [], self.n_features
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("feature_mean", torch.zeros(self.n_features))
        self.register_buffer("feature_std", torch.ones(self.n_features))
        self.register_buffer("e_ref", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def fluctuation(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``eps_i - e_ref``: the learned part of the site energies.

        ``x [..., F]`` in the trained order; or, with ``positions``, channel-major ``x [B, F, N]`` in a
        descriptor's internal order, ``x[:, i]`` being trained feature ``positions[i]``
        (:meth:`Descriptor.forward` with ``ordered=False``, :meth:`Descriptor.feature_positions`): the
        normalization and the first layer are permuted instead of the features (the same result up to rounding).
        """
        if positions is None:
            return self.scale * self.net(((x - self.feature_mean) / self.feature_std)).squeeze(-1)
        first = self.net[0]
        w = first.weight[:, positions] / self.feature_std[positions]                          # [h, F]
        z = torch.matmul(w, x - self.feature_mean[positions, None].expand_as(x)) + first.bias[:, None]  # [B, h, N]
        return self.scale * self.net[1:](z.transpose(-1, -2)).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.e_ref + self.fluctuation(x)

    @torch.no_grad()
    def set_normalization(self, feature_mean, feature_std, e_ref: float, scale: float) -> None:
        std = torch.as_tensor(feature_std, dtype=self.feature_std.dtype)
        # constant features (no spread on the training set beyond roundoff) are passed through unscaled:
        # dividing by a roundoff-sized spread would amplify float32 noise into O(1) inputs and make the
        # energy jump. Features are dimensionless products of unit vectors, O(0.01-1) when they vary.
        floor = max(DEAD_FEATURE_STD, 1e-8 * float(std.max()))
        std = torch.where(std > floor, std, torch.ones_like(std))
        self.feature_mean.copy_(torch.as_tensor(feature_mean, dtype=self.feature_mean.dtype))
        self.feature_std.copy_(std)
        self.e_ref.fill_(float(e_ref))
        self.scale.fill_(float(scale))

    def shape(self) -> dict:
        return {"n_features": self.n_features, "hidden": list(self.hidden), "activation": self.activation,
                "n_parameters": sum(p.numel() for p in self.parameters())}


class SiteEnergyModel(nn.Module):
    """Descriptor + per-site MLP: ``forward(spins [B,N,3]) -> E [B]`` in the model's dtype."""

    def __init__(self, descriptor: nn.Module, head: SiteMLP, lattice, *, card: dict | None = None):
        super().__init__()
        self.lattice = lattice
        if int(descriptor.n_features) != head.n_features:
            raise NearsightError(f"descriptor gives {descriptor.n_features} features but the network expects "
                                 f"{head.n_features}; the model file does not match its descriptor")
        self.descriptor, self.head = descriptor, head
        self.card = dict(card or {})

    @property
    def dtype(self) -> torch.dtype:
        return self.head.e_ref.dtype

    @property
    def cutoff(self) -> float:
        return float(self.descriptor.cutoff)

    def _fluctuation(self, spins: torch.Tensor) -> torch.Tensor:
        """``eps_i - e_ref`` ``[B, N]`` (features in the descriptor's internal order, see SiteMLP.fluctuation)."""
        d = self.descriptor
        return self.head.fluctuation(d(spins, ordered=False), d.feature_positions(spins.device))

    def site_energies(self, spins: torch.Tensor) -> torch.Tensor:
        return self.head.e_ref + self._fluctuation(spins)

    def forward(self, spins: torch.Tensor) -> torch.Tensor:
        """Total energy ``[B]``, accumulated in float64 whatever the model dtype: ``N e_ref + sum_i (eps_i -
        e_ref)``, so a float32 model's energy carries no O(N eps_32 |e_ref|) rounding of the large constant."""
        fl = self._fluctuation(spins)
        return fl.to(torch.float64).sum(-1) + fl.shape[-1] * self.head.e_ref.to(torch.float64)

    def on_lattice(self, lattice) -> "SiteEnergyModel":
        """The same network on another lattice of the same kind (the descriptor is rebuilt; weights shared)."""
        from ..descriptors import build_descriptor
        kind = self.lattice.kind
        if lattice.kind != kind:
            raise NearsightError(f"this model was trained on the {kind} lattice and cannot be used on "
                                 f"{lattice.kind!r}; choose a model trained on {lattice.kind!r}")
        if lattice == self.lattice:
            return self
        desc = build_descriptor(self.descriptor.config(), lattice).to(dtype=self.dtype)
        return SiteEnergyModel(desc, self.head, lattice, card=self.card)


def energy_and_fields(model: nn.Module, spins: torch.Tensor, create_graph: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy ``[B]`` and fields ``h = -dE/dS`` ``[B, N, 3]`` by autograd: the one place fields are made.

    ``create_graph=True`` keeps the graph so a loss on the fields can be back-propagated to the weights
    (training, second-derivative checks); otherwise both outputs are detached. Spins that already require
    grad are differentiated as they are (so ``gradcheck`` sees through this function).
    """
    with torch.enable_grad():
        s = spins if spins.requires_grad else spins.detach().requires_grad_(True)
        energy = model(s)
        (grad,) = torch.autograd.grad(energy.sum(), s, create_graph=create_graph)
    if not create_graph:
        return energy.detach(), -grad.detach()
    return energy, -grad


def energy_and_fields_by_sites(model: SiteEnergyModel, spins: torch.Tensor, site_chunk: int = 4096
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The same energy ``[B]`` and fields ``[B, N, 3]`` as :func:`energy_and_fields` (detached), with the sites
    evaluated ``site_chunk`` at a time so the memory of the per-site features stays bounded on large lattices.

    The lattice-wide intermediates (pair/chirality fields and block references, :meth:`Descriptor.lattice_terms`)
    are built once; each chunk's site energies are differentiated with respect to them, the gradients are summed,
    and one final backward pass carries them to the spins. Identical to the unchunked result up to rounding
    (a test checks 1e-12 in float64).
    """
    desc, head = model.descriptor, model.head
    with torch.enable_grad():
        s = spins.detach().requires_grad_(True)
        flat, blocks = desc.lattice_terms(s)
        f_d, b_d = flat.detach().requires_grad_(True), blocks.detach().requires_grad_(True)
        g_f, g_b = torch.zeros_like(f_d), torch.zeros_like(b_d)
        N, positions = s.shape[1], desc.feature_positions(s.device)
        energy = torch.zeros(s.shape[0], dtype=torch.float64, device=s.device)
        for start in range(0, N, max(1, int(site_chunk))):
            x = desc.site_features(f_d, b_d, slice(start, min(N, start + site_chunk)), ordered=False)
            fl = head.fluctuation(x, positions)
            a, b = torch.autograd.grad(fl.sum(), [f_d, b_d])
            g_f += a
            g_b += b
            energy += fl.detach().to(torch.float64).sum(-1)
        (grad,) = torch.autograd.grad([flat, blocks], s, grad_outputs=[g_f, g_b])
    return energy + N * head.e_ref.to(torch.float64), -grad.detach()
