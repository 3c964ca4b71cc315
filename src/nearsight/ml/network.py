"""The Behler–Parrinello network: a descriptor of each site's neighbourhood -> a local energy, ``E = sum_i eps_i``.

    x_i   = (D(S)_i - mean) / std                     descriptor features, standardized on the training set
    eps_i = e_ref + scale * MLP(x_i)                  one MLP shared by all sites (translation invariance)
    E     = sum_i eps_i,          h_i = -dE/dS_i      (autograd: :func:`energy_and_fields`)

The energy is summed in float64 (the fields stay in the model's dtype, float32 or float64).

A model may take ``G`` global inputs (``n_globals``, default 0): numbers shared by every site of a configuration
(``globals [B, G]``, or one per site ``[B, N, G]``), appended to each site's standardized features — the chemical
potential of a mu-conditioned model (:mod:`nearsight.ml.canonical`). With ``n_globals = 0`` the network is exactly
the plain one (shipped model files load and evaluate unchanged).

The MLP uses smooth activations (SiLU or tanh) so that the fields, which are first derivatives, are continuous.
``e_ref`` is the mean energy per site of the training labels and ``scale`` the RMS of their transverse fields:
the network learns O(1) fluctuations about a large constant. The descriptor is rebuilt for any lattice of the
same kind (:meth:`SiteEnergyModel.on_lattice`); only the MLP and the normalization buffers are learned and saved.
"""
from __future__ import annotations

import torch
from torch import nn

from ..descriptors import build_descriptor
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

    def __init__(self, n_features: int, hidden=(32, 32), activation: str = "silu", n_globals: int = 0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise NearsightError(f"activation must be one of {', '.join(ACTIVATIONS)} (smooth, so the fields are "
                                 f"continuous), got {activation!r}")
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise NearsightError(f"hidden sizes must be a non-empty list of positive integers, got {hidden!r}")
        if isinstance(n_globals, bool) or int(n_globals) != n_globals or n_globals < 0:
            raise NearsightError(f"n_globals must be an integer >= 0, got {n_globals!r}")
        self.n_features, self.hidden, self.activation = int(n_features), hidden, activation
        self.n_globals = int(n_globals)
        layers, width = [], self.n_features + self.n_globals
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("feature_mean", torch.zeros(self.n_features))
        self.register_buffer("feature_std", torch.ones(self.n_features))
        self.register_buffer("e_ref", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def fluctuation(self, x: torch.Tensor, positions: torch.Tensor | None = None,
                    globals: torch.Tensor | None = None) -> torch.Tensor:
        """``eps_i - e_ref``: the learned part of the site energies.

        ``x [..., F]`` in the trained order; or, with ``positions``, channel-major ``x [B, F, N]`` in a
        descriptor's internal order, ``x[:, i]`` being trained feature ``positions[i]``
        (:meth:`Descriptor.forward` with ``ordered=False``, :meth:`Descriptor.feature_positions`): the
        normalization and the first layer are permuted instead of the features (the same result up to rounding).
        ``globals`` (``n_globals > 0`` only): ``[B, G]`` for every site of a configuration, or ``[B, N, G]`` per site;
        they enter the first layer as given (already normalized).
        """
        g = self._globals(globals)
        if positions is None:
            z = (x - self.feature_mean) / self.feature_std
            if g is not None:
                g = g.unsqueeze(-2) if g.dim() == x.dim() - 1 else g
                z = torch.cat([z, g.expand(*z.shape[:-1], self.n_globals)], -1)
            return self.scale * self.net(z).squeeze(-1)
        first = self.net[0]
        F = self.n_features
        w = first.weight[:, positions] / self.feature_std[positions]                          # [h, F]
        z = torch.matmul(w, x - self.feature_mean[positions, None].expand_as(x)) + first.bias[:, None]  # [B, h, N]
        if g is not None:
            wg = first.weight[:, F:]                                                          # [h, G]
            z = z + (torch.matmul(g, wg.t()).unsqueeze(-1) if g.dim() == 2 else torch.matmul(g, wg.t()).transpose(-1, -2))
        return self.scale * self.net[1:](z.transpose(-1, -2)).squeeze(-1)

    def _globals(self, globals_) -> torch.Tensor | None:
        if self.n_globals == 0:
            if globals_ is not None:
                raise NearsightError("this network takes no global inputs (n_globals = 0); drop globals")
            return None
        if globals_ is None:
            raise NearsightError(f"this network needs {self.n_globals} global input(s) per configuration "
                                 f"(n_globals), e.g. the chemical potential of a mu-conditioned model")
        g = globals_.to(self.e_ref.dtype)
        if g.shape[-1] != self.n_globals or g.dim() not in (2, 3):
            raise NearsightError(f"globals must have shape [B, {self.n_globals}] or [B, N, {self.n_globals}], got "
                                 f"{tuple(g.shape)}")
        return g

    def forward(self, x: torch.Tensor, globals: torch.Tensor | None = None) -> torch.Tensor:
        return self.e_ref + self.fluctuation(x, globals=globals)

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
        out = {"n_features": self.n_features, "hidden": list(self.hidden), "activation": self.activation,
               "n_parameters": sum(p.numel() for p in self.parameters())}
        if self.n_globals:
            out["n_globals"] = self.n_globals
        return out


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

    @property
    def n_globals(self) -> int:
        return self.head.n_globals

    def _fluctuation(self, spins: torch.Tensor, globals=None) -> torch.Tensor:
        """``eps_i - e_ref`` ``[B, N]`` (features in the descriptor's internal order, see SiteMLP.fluctuation)."""
        d = self.descriptor
        return self.head.fluctuation(d(spins, ordered=False), d.feature_positions(spins.device), globals)

    def site_energies(self, spins: torch.Tensor, globals=None) -> torch.Tensor:
        return self.head.e_ref + self._fluctuation(spins, globals)

    def forward(self, spins: torch.Tensor, globals=None) -> torch.Tensor:
        """Total energy ``[B]``, accumulated in float64 whatever the model dtype: ``N e_ref + sum_i (eps_i -
        e_ref)``, so a float32 model's energy carries no O(N eps_32 |e_ref|) rounding of the large constant.
        ``globals``: ``[B, n_globals]`` (or ``[B, N, n_globals]``) for a model with global inputs."""
        fl = self._fluctuation(spins, globals)
        return fl.to(torch.float64).sum(-1) + fl.shape[-1] * self.head.e_ref.to(torch.float64)

    def on_lattice(self, lattice) -> "SiteEnergyModel":
        """The same network on another lattice of the same kind (the descriptor is rebuilt; weights shared)."""
        kind = self.lattice.kind
        if lattice.kind != kind:
            raise NearsightError(f"this model was trained on the {kind} lattice and cannot be used on "
                                 f"{lattice.kind!r}; choose a model trained on {lattice.kind!r}")
        if lattice == self.lattice:
            return self
        desc = build_descriptor(self.descriptor.config(), lattice).to(dtype=self.dtype)
        return SiteEnergyModel(desc, self.head, lattice, card=self.card)


def energy_and_fields(model: nn.Module, spins: torch.Tensor, create_graph: bool = False, *, mu=None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy ``[B]`` and fields ``h = -dE/dS`` ``[B, N, 3]`` by autograd: the one place fields are made.

    ``create_graph=True`` keeps the graph so a loss on the fields can be back-propagated to the weights
    (training, second-derivative checks); otherwise both outputs are detached. Spins that already require
    grad are differentiated as they are (so ``gradcheck`` sees through this function). ``mu`` (``[B]``): the
    chemical potential of a mu-conditioned model (:class:`nearsight.ml.canonical.MuModel`): fields at fixed ``mu``.
    """
    with torch.enable_grad():
        s = spins if spins.requires_grad else spins.detach().requires_grad_(True)
        energy = model(s) if mu is None else model(s, mu)
        (grad,) = torch.autograd.grad(energy.sum(), s, create_graph=create_graph)
    if not create_graph:
        return energy.detach(), -grad.detach()
    return energy, -grad


def energy_and_fields_by_sites(model: SiteEnergyModel, spins: torch.Tensor, site_chunk: int = 4096,
                               globals: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The same energy ``[B]`` and fields ``[B, N, 3]`` as :func:`energy_and_fields` (detached), with the sites
    evaluated ``site_chunk`` at a time so the memory of the per-site features stays bounded on large lattices.

    The lattice-wide intermediates (pair/chirality fields and block references, :meth:`Descriptor.lattice_terms`)
    are built once; each chunk's site energies are differentiated with respect to them, the gradients are summed,
    and one final backward pass carries them to the spins. Identical to the unchunked result up to rounding
    (a test checks 1e-12 in float64). ``globals [B, G]``: the global inputs of a model that takes them.
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
            fl = head.fluctuation(x, positions, globals)
            a, b = torch.autograd.grad(fl.sum(), [f_d, b_d])
            g_f += a
            g_b += b
            energy += fl.detach().to(torch.float64).sum(-1)
        (grad,) = torch.autograd.grad([flat, blocks], s, grad_outputs=[g_f, g_b])
    return energy + N * head.e_ref.to(torch.float64), -grad.detach()
