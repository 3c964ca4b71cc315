"""The spin-equivariant message-passing model: ``E = sum_i eps_i`` with ``eps_i`` from even scalars only.

    start      v_i (polar, A1) = S_i w,   s_i (even, A1) = b + W_g g    (g: optional global inputs [B, G])
    layers     x <- InteractionLayer(x)        (aggregation over offsets |d| <= radius, products, gates)
    eps_i      = e_ref + scale * MLP(s_i, even A1 block)
    E          = sum_i eps_i      (float64: N e_ref + sum_i (eps_i - e_ref)),   h_i = -dE/dS_i by autograd

The receptive radius of a site energy (``cutoff``) is ``layers * reach``, ``reach`` the longest message offset; a
field sees ``2 cutoff``. The lattice-independent part (weights, normalization, geometry) is :class:`MPNNCore`;
:class:`MPNNModel` adds the neighbour table of one lattice, and :meth:`MPNNModel.on_lattice` shares the core.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import NearsightError
from ..network import ACTIVATIONS, DTYPES, SiteMLP, dtype_from_name, dtype_name
from .geometry import PeriodicGather, message_geometry, neighbour_table
from .layers import InteractionLayer

#: defaults of :func:`build_mpnn`; with them the site energy sees 3 x sqrt(2) = 4.24 (square, shells 1 and sqrt 2)
#: or 3 x sqrt(3) = 5.20 (triangular, shells 1 and sqrt 3), a field twice that.
DEFAULTS = {"channels": 8, "product_channels": 4, "layers": 3, "radius": 1.75, "hidden": [32, 32],
            "activation": "silu", "n_globals": 0}
CONFIG_KEYS = tuple(DEFAULTS) + ("family", "dtype")


class MPNNCore(nn.Module):
    """Weights, normalization and message geometry of the model: everything that does not depend on lattice size."""

    def __init__(self, kind: str, *, channels: int, product_channels: int, layers: int, radius: float,
                 hidden, activation: str, n_globals: int):
        super().__init__()
        self.kind = kind
        self.geometry = message_geometry(kind, float(radius))
        self.settings = {"channels": int(channels), "product_channels": int(product_channels),
                         "layers": int(layers), "radius": float(radius), "hidden": [int(h) for h in hidden],
                         "activation": activation, "n_globals": int(n_globals)}
        c = int(channels)
        self.embed_v = nn.Parameter(torch.randn(c))
        self.embed_s = nn.Parameter(torch.zeros(c))
        self.embed_g = nn.Parameter(torch.randn(int(n_globals), c) / max(1, int(n_globals)) ** 0.5)
        self.layers = nn.ModuleList([InteractionLayer(self.geometry, c, product_channels, activation, first=(k == 0),
                                                      final=(k == int(layers) - 1)) for k in range(int(layers))])
        self.head = SiteMLP(c, hidden, activation)       # its e_ref / scale are the model's normalization

    @property
    def cutoff(self) -> float:
        return len(self.layers) * self.geometry.reach

    def embed(self, spins: torch.Tensor, globals_: torch.Tensor | None) -> torch.Tensor:
        """Compact starting features ``[B, 4 (component), c, N]``: the even scalars (component 0, label block 0)
        and the polar vectors ``S w`` (components 1-3, block 1); every other block is zero
        (:func:`~.layers.expand_start` makes the full ``[B, 4, 4, c, N]``; the first layer reads the compact form)."""
        B, N = spins.shape[:2]
        polar = spins.transpose(1, 2).unsqueeze(2) * self.embed_v[:, None]   # [B, 3, c, N]
        even = self.embed_s[None, :, None].expand(B, -1, N)
        if globals_ is not None:
            even = even + (globals_ @ self.embed_g).unsqueeze(-1)
        return torch.cat([even[:, None], polar], 1)


class MPNNModel(nn.Module):
    """Message-passing site-energy model on one lattice: ``forward(spins [B,N,3]) -> E [B]`` (float64).

    Same contract as :class:`nearsight.ml.network.SiteEnergyModel`: ``site_energies``, ``on_lattice``,
    ``dtype``, ``cutoff``, ``lattice``, ``card``; plus ``e_ref`` / ``scale`` / :meth:`set_normalization`,
    :meth:`config` and :meth:`shape`. ``globals [B, G]`` (``G = config()['n_globals']``, default 0) are extra
    even, lattice-invariant inputs (e.g. a chemical potential) added to the starting even scalars.
    """

    family = "mpnn"

    def __init__(self, core: MPNNCore, lattice, *, card: dict | None = None):
        super().__init__()
        if lattice.kind != core.kind:
            raise NearsightError(f"this model was trained on the {core.kind} lattice and cannot be used on "
                                 f"{lattice.kind!r}; choose a model trained on {lattice.kind!r}")
        lattice.check_cutoff(core.cutoff)
        self.core, self.lattice = core, lattice
        self.card = dict(card or {})
        device = core.head.e_ref.device
        table = torch.as_tensor(neighbour_table(lattice, core.geometry), device=device)
        self.register_buffer("index", table, persistent=False)                       # [N, M]
        self.gather = PeriodicGather(lattice, core.geometry)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def dtype(self) -> torch.dtype:
        return self.core.head.e_ref.dtype

    @property
    def cutoff(self) -> float:
        """Receptive radius of a site energy: ``layers * reach`` (a field sees twice that)."""
        return float(self.core.cutoff)

    @property
    def e_ref(self) -> torch.Tensor:
        return self.core.head.e_ref

    @property
    def scale(self) -> torch.Tensor:
        return self.core.head.scale

    @property
    def n_globals(self) -> int:
        return self.core.settings["n_globals"]

    @torch.no_grad()
    def set_normalization(self, e_ref: float, scale: float) -> None:
        """``eps_i = e_ref + scale * MLP(...)``: the mean label energy per site and the RMS label field."""
        self.core.head.e_ref.fill_(float(e_ref))
        self.core.head.scale.fill_(float(scale))

    # ---------------------------------------------------------------------------------------------- compute
    def _check(self, spins: torch.Tensor, globals_) -> tuple[torch.Tensor, torch.Tensor | None]:
        if spins.dim() != 3 or spins.shape[1:] != (self.lattice.N, 3):
            raise NearsightError(f"spins must have shape [B, {self.lattice.N}, 3] for the {self.lattice.L1}x"
                                 f"{self.lattice.L2} lattice, got {tuple(spins.shape)}; use on_lattice for "
                                 f"another size")
        G = self.n_globals
        if G == 0:
            if globals_ is not None and torch.as_tensor(globals_).numel() > 0:
                raise NearsightError("this model takes no global inputs (n_globals = 0); drop globals")
            return spins.to(self.dtype), None
        if globals_ is None:
            raise NearsightError(f"this model needs globals [B, {G}] (n_globals = {G}), e.g. the chemical potential")
        g = torch.as_tensor(globals_, device=spins.device).to(self.dtype)
        if g.dim() == 1:
            g = g.expand(spins.shape[0], -1)
        if g.shape != (spins.shape[0], G):
            raise NearsightError(f"globals must have shape [B, {G}] = [{spins.shape[0]}, {G}], got {tuple(g.shape)}")
        return spins.to(self.dtype), g

    def _run(self, spins: torch.Tensor, globals_) -> torch.Tensor:
        s, g = self._check(spins, globals_)
        x = self.core.embed(s, g)
        for layer in self.core.layers:
            x = layer(x, self.gather)
        return x

    def features(self, spins: torch.Tensor, globals=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Final site features: scalars ``[B, N, 4, c]`` and vectors ``[B, N, 3, 4, c]`` in label blocks
        (:data:`~.geometry.LABEL_NAMES`; the last layer updates only block 0 of the scalars)."""
        x = self._run(spins, globals)
        return x[:, 0].permute(0, 3, 1, 2), x[:, 1:].permute(0, 4, 1, 2, 3)

    def _fluctuation(self, spins: torch.Tensor, globals=None) -> torch.Tensor:
        even = self._run(spins, globals)[:, 0, 0]                            # [B, c, N]: even A1 scalars only
        return self.core.head.fluctuation(even, torch.arange(even.shape[1], device=even.device))

    def site_energies(self, spins: torch.Tensor, globals=None) -> torch.Tensor:
        """``eps_i`` ``[B, N]`` in the model dtype."""
        return self.e_ref + self._fluctuation(spins, globals)

    def forward(self, spins: torch.Tensor, globals=None) -> torch.Tensor:
        """Total energy ``[B]`` in float64: ``N e_ref + sum_i (eps_i - e_ref)`` (no rounding of the constant)."""
        fl = self._fluctuation(spins, globals)
        return fl.to(torch.float64).sum(-1) + fl.shape[-1] * self.e_ref.to(torch.float64)

    def on_lattice(self, lattice) -> "MPNNModel":
        """The same network (shared core: weights and normalization) on another lattice of the same kind."""
        if lattice == self.lattice:
            return self
        return MPNNModel(self.core, lattice, card=self.card)

    # ------------------------------------------------------------------------------------------ description
    def config(self) -> dict:
        """Everything :func:`build_mpnn` needs to rebuild this network (JSON-able)."""
        return {"family": "mpnn", **self.core.settings, "dtype": dtype_name(self.dtype)}

    def shape(self) -> dict:
        geo = self.core.geometry
        return {"family": "mpnn", **self.core.settings, "n_parameters": sum(p.numel() for p in self.parameters()),
                "message_offsets": len(geo.offsets) - 1, "message_reach": geo.reach, "cutoff": self.cutoff,
                "irreps": [h.label for h in geo.irreps], "couplings": len(geo.couplings)}

    def extra_repr(self) -> str:
        return f"lattice={self.lattice!r}, cutoff={self.cutoff:.3g}"


def _positive_int(cfg: dict, key: str, lower: int = 1) -> int:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lower:
        raise NearsightError(f"mpnn {key} must be an integer >= {lower}, got {v!r}")
    return v


def build_mpnn(config: dict, lattice, dtype: torch.dtype | None = None) -> MPNNModel:
    """A freshly initialized :class:`MPNNModel` on ``lattice`` from ``config`` (missing keys: :data:`DEFAULTS`).

    Keys: ``channels`` (per label block), ``product_channels``, ``layers``, ``radius`` (message offsets
    ``|d| <= radius``, >= 1), ``hidden`` (readout MLP), ``activation`` (silu / tanh), ``n_globals``; ``family``
    (must be ``mpnn``) and ``dtype`` are accepted. The dtype is ``dtype`` if given, else ``config['dtype']``, else
    float32. Weights are drawn from torch's global generator (seed it for reproducibility).
    """
    if not isinstance(config, dict):
        raise NearsightError(f"mpnn config must be a dictionary, got {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise NearsightError(f"unknown mpnn option(s) {', '.join(map(repr, unknown))}; valid: {', '.join(CONFIG_KEYS)}")
    if config.get("family", "mpnn") != "mpnn":
        raise NearsightError(f"build_mpnn builds family 'mpnn', the config says {config['family']!r}")
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    for key in ("channels", "product_channels", "layers"):
        _positive_int(cfg, key)
    _positive_int(cfg, "n_globals", 0)
    try:
        radius = float(cfg["radius"])
    except (TypeError, ValueError):
        raise NearsightError(f"mpnn radius must be a number >= 1, got {cfg['radius']!r}") from None
    hidden = cfg["hidden"]
    if (not isinstance(hidden, (list, tuple)) or not hidden
            or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden)):
        raise NearsightError(f"mpnn hidden must be a non-empty list of positive integers, got {hidden!r}")
    if cfg["activation"] not in ACTIVATIONS:
        raise NearsightError(f"mpnn activation must be one of {', '.join(ACTIVATIONS)}, got {cfg['activation']!r}")
    if dtype is None:
        dtype = dtype_from_name(cfg.get("dtype", "float32"))
    elif dtype not in DTYPES.values():
        raise NearsightError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    core = MPNNCore(lattice.kind, channels=cfg["channels"], product_channels=cfg["product_channels"],
                    layers=cfg["layers"], radius=radius, hidden=list(hidden), activation=cfg["activation"],
                    n_globals=cfg["n_globals"])
    return MPNNModel(core.to(dtype), lattice)
