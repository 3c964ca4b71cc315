"""Model families the training loop shares (config ``family: bp | mpnn``).

A family builds the *learned module* (the parameters the optimizer, the EMA and the checkpoint hold), gives a model
``forward(spins [B,N,3]) -> E [B]`` on every lattice size of the data that shares those weights (:meth:`views`,
also used for the EMA copy), sets the normalization from the training set only, and saves the model file.

* ``bp`` — :class:`nearsight.ml.network.SiteEnergyModel`: the learned module is the :class:`SiteMLP` head; the
  descriptor is fixed (one per lattice size), so its features may be cached (:mod:`.cache`).
* ``mpnn`` — :mod:`nearsight.ml.mpnn` (imported only when asked for): ``build_mpnn(config, lattice, dtype)``; the
  learned module is the model itself and ``on_lattice`` shares its weights; ``set_normalization(e_ref, scale)``.

Data labelled over a window of mu (``data.physics["mu_window"]``) make the model **mu-conditioned**
(:mod:`nearsight.ml.canonical`): the network gets one global input (BP: ``SiteMLP(n_globals=1)``; MPNN:
``n_globals: 1``), every view is a :class:`~nearsight.ml.canonical.MuModel` with ``mu_input`` =
``{mu0, mu_scale}`` (centre and half-width of the window) and ``n_ref + chi_ref (mu - mu0)`` (the least-squares
line through the label counts per site), and the energy reference is the mean of ``E/N`` less the baseline.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import NearsightError
from ..ml.canonical import MuModel
from ..ml.cards import read_model_file, save_model
from ..ml.network import DTYPES, SiteEnergyModel, SiteMLP


def mu_input_of(data) -> dict | None:
    """``{mu0, mu_scale, n_ref}`` of a mu-conditioned model from its training data (None without a mu window)."""
    window = data.physics.get("mu_window")
    if window is None:
        return None
    lo, hi = (float(x) for x in window)
    mu0 = 0.5 * (lo + hi)
    n = torch.cat([fs.n_electrons / fs.lattice.N for fs in data.train])
    d = torch.cat([fs.mu for fs in data.train]) - mu0
    A = torch.stack([torch.ones_like(d), d], -1)
    coef = torch.linalg.lstsq(A, n.unsqueeze(-1)).solution.squeeze(-1) if len(d) > 1 else torch.stack([n.mean(), 0 * n.mean()])
    return {"mu0": mu0, "mu_scale": 0.5 * (hi - lo), "n_ref": float(coef[0]), "chi_ref": max(0.0, float(coef[1]))}


def _wrap(model, mu_input):
    return model if mu_input is None else MuModel(model, mu_input)


def _energy_and_field_scale(data, mu_input: dict | None = None) -> tuple[float, float]:
    """Mean energy per site (less the linear mu baseline of a mu-conditioned model) and RMS transverse field of the
    training labels."""
    from ..fields import transverse
    if mu_input is None:
        e = torch.cat([fs.energy / fs.lattice.N for fs in data.train])
    else:
        d = [fs.mu - mu_input["mu0"] for fs in data.train]
        e = torch.cat([fs.energy / fs.lattice.N + mu_input["n_ref"] * x + 0.5 * mu_input["chi_ref"] * x * x
                       for fs, x in zip(data.train, d)])
    hp = torch.cat([transverse(fs.fields, fs.spins).pow(2).sum(-1).reshape(-1) for fs in data.train])
    scale = float(hp.mean().sqrt())
    return float(e.mean()), (scale if scale > 0 else 1.0)


class BPFamily:
    name = "bp"
    cacheable = True

    def __init__(self, c: dict, data):
        from ..descriptors import Descriptor
        self.c, self.dtype, self.device = c, DTYPES[c["dtype"]], torch.device(c["device"])
        lattices = {fs.lattice for fs in data.train + data.val + data.external}
        opts = dict(c["descriptor"])
        cutoff = opts.pop("cutoff", None)
        try:
            self.descs = {lat: Descriptor(lat, cutoff, **opts).to(self.dtype) for lat in lattices}
        except TypeError as exc:
            raise NearsightError(f"descriptor options {c['descriptor']!r} are not accepted: {exc}") from None
        widths = {int(d.n_features) for d in self.descs.values()}
        if len(widths) != 1:
            raise NearsightError(f"the descriptor gives different feature counts on different lattice sizes "
                                 f"({sorted(widths)}); train on one size or fix the descriptor")
        self.mu_input = mu_input_of(data)
        torch.manual_seed(c["seed"])
        self.learn = SiteMLP(widths.pop(), c["hidden"], c["activation"], n_globals=int(self.mu_input is not None)
                             ).to(self.dtype).to(self.device)

    def views(self, module) -> dict:
        return {lat: _wrap(SiteEnergyModel(d, module, lat).to(self.device), self.mu_input)
                for lat, d in self.descs.items()}

    @torch.no_grad()
    def normalize(self, data) -> None:
        """Feature standardization, per-site energy reference and field scale from the training set only.

        The feature statistics are taken from float64 features whatever the model dtype: a feature that vanishes
        identically (some reference phases of small-cutoff descriptors do, by symmetry) then has a spread at
        float64 roundoff and is recognized as constant; measured in float32 that spread was float32 roundoff and
        dividing by it made a float32 model's energy jump by ~0.05 between neighbouring configurations."""
        head = self.learn
        feats = []
        for fs in data.train:
            d = self.descs[fs.lattice]
            for part in torch.split(fs.spins, 64):
                feats.append(d(part.to(self.device, torch.float64)).reshape(-1, head.n_features).cpu())
        x = torch.cat(feats)
        e_ref, scale = _energy_and_field_scale(data, self.mu_input)
        head.set_normalization(x.mean(0), x.std(0), e_ref, scale)

    @staticmethod
    def card(model) -> dict:
        model = getattr(model, "base", model)
        head = model.head
        return {"family": "bp", "cutoff": model.cutoff, "field_radius": 2 * model.cutoff,
                "n_features": head.n_features, "descriptor": model.descriptor.config(), "network": head.shape(),
                "energy_reference": float(head.e_ref), "field_scale": float(head.scale)}

    @staticmethod
    def save(path: str, model, card: dict) -> str:
        return save_model(path, model, card)


class MPNNFamily:
    name = "mpnn"
    cacheable = False

    def __init__(self, c: dict, data):
        try:
            from ..ml.mpnn import build_mpnn
        except ImportError as exc:
            raise NearsightError(f"family: mpnn needs nearsight.ml.mpnn, which cannot be imported here ({exc}); "
                                 f"use family: bp") from None
        self.c, self.dtype, self.device = c, DTYPES[c["dtype"]], torch.device(c["device"])
        self.lattices = sorted({fs.lattice for fs in data.train + data.val + data.external}, key=lambda l: l.N)
        self.mu_input = mu_input_of(data)
        cfg = dict(c["mpnn"])
        if self.mu_input is not None:
            if cfg.get("n_globals", 1) not in (0, 1):
                raise NearsightError(f"mu-window data make the model mu-conditioned (one global input, the chemical "
                                     f"potential); mpnn n_globals = {cfg['n_globals']!r} contradicts it: drop it")
            cfg["n_globals"] = 1
        torch.manual_seed(c["seed"])
        self.learn = build_mpnn(cfg, self.lattices[0], self.dtype).to(self.device)

    def views(self, module) -> dict:
        return {lat: _wrap(module.on_lattice(lat).to(self.device), self.mu_input) for lat in self.lattices}

    @torch.no_grad()
    def normalize(self, data) -> None:
        self.learn.set_normalization(*_energy_and_field_scale(data, self.mu_input))

    @staticmethod
    def card(model) -> dict:
        model = getattr(model, "base", model)
        shape = model.shape()
        return {"family": "mpnn", "cutoff": float(model.cutoff),
                "field_radius": float(getattr(model, "field_radius", 2 * model.cutoff)),
                "n_features": int(shape.get("n_features", 0)) if isinstance(shape, dict) else 0,
                "mpnn": model.config(), "network": shape,
                "energy_reference": float(model.e_ref), "field_scale": float(model.scale)}

    @staticmethod
    def save(path: str, model, card: dict) -> str:
        return save_model(path, model, card)


FAMILIES = {"bp": BPFamily, "mpnn": MPNNFamily}


def build_family(c: dict, data):
    if c["family"] not in FAMILIES:
        raise NearsightError(f"family must be one of {', '.join(FAMILIES)}, got {c['family']!r}")
    return FAMILIES[c["family"]](c, data)


def init_state(path: str, family_name: str, fam) -> dict:
    """The state of the model file ``path`` (a training config's ``init``) for ``fam``'s network, checked before
    anything is written: same family, mu conditioning, descriptor or network and parameter shapes, else a one-line
    error."""
    if not Path(path).is_file():
        raise NearsightError(f"init model file {path!r} does not exist; give the path of a trained NAME.pt")
    payload = read_model_file(path)
    family = payload.get("family", "bp")
    if family != family_name:
        raise NearsightError(f"init model {path!r} is family {family!r} but this config trains "
                             f"{family_name!r}; fine-tune within one family")
    if bool(payload["card"].get("mu_conditioned")) != (fam.mu_input is not None):
        raise NearsightError(f"init model {path!r} and these datasets differ in mu conditioning (mu-window labels "
                             f"train a mu-conditioned model); use a model trained on the same kind of labels")
    if family == "bp" and payload["descriptor"] != next(iter(fam.descs.values())).config():
        raise NearsightError(f"init model {path!r} has another descriptor than this config; set the same "
                             f"descriptor options as the init model")
    if family == "mpnn" and payload["network"] != fam.learn.config():
        raise NearsightError(f"init model {path!r} has another network than this config; set the same mpnn / "
                             f"hidden / activation / dtype as the init model")
    mine = fam.learn.state_dict()
    theirs = payload["state_dict"]
    bad = sorted(set(mine) ^ set(theirs)) or [k for k in mine if tuple(mine[k].shape) != tuple(theirs[k].shape)]
    if bad:
        raise NearsightError(f"init model {path!r} has another network shape than this config (first difference: "
                             f"{bad[0]}); set the same descriptor / hidden / mpnn sizes as the init model")
    return {k: v.to(mine[k].dtype) for k, v in theirs.items()}
