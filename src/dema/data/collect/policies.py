"""Behaviour policies: numpy MLPs read from `.npz` files or straight from Stable-Baselines3 zips.

One class, `MlpPolicy`, acts for every policy kind the collector uses; two readers build it:

- `load_npz(path)`: the format of the shipped policies, behavior_policies/README.md (float64 arrays,
  torch layout `[out, in]`): `kind` is `squashed_gaussian` (SAC, TQC), `gaussian` (PPO, A2C, TRPO)
  or `linear` (ARS); optional observation normalisation `clip((o - mean) / sqrt(var + eps), ±clip)`
  and an optional time feature `1 - t / 1000` appended to the raw observation.
- `load_sb3_zip(path)`: a Stable-Baselines3 save file (a zip holding `policy.pth` and a `data`
  JSON). The state dict is read with `torch.load(weights_only=True)`, the activation and
  algorithm from the JSON, so SB3 itself is not needed to act. A zip carries no VecNormalize
  statistics (rl-zoo keeps them in a separate pickle), so a policy trained with normalised
  observations must be converted to `.npz` first.

Acting, with h the last hidden activation (the normalised observation when there is no hidden
layer) and eps ~ N(0, I):
  squashed_gaussian  deterministic tanh(mu(h));  stochastic tanh(mu(h) + exp(clip(ls(h), -20, 2)) eps)
  gaussian / linear  deterministic clip(mu(h));  stochastic clip(mu(h) + exp(log_std) eps)
The squashed action in [-1, 1] is then rescaled to the action bounds, as SB3 does (a no-op for the
MuJoCo locomotion tasks, whose bounds are [-1, 1]). `RandomPolicy` draws uniformly in the bounds.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dema.errors import DataError

MAX_EPISODE_STEPS = 1000  # the time feature's horizon (rl-zoo's TimeFeatureWrapper default)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of the state-dependent log std

_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
}


@dataclass
class MlpPolicy:
    """A feed-forward Gaussian policy evaluated in numpy on a batch of observations."""

    name: str
    kind: str  # "squashed_gaussian" | "gaussian" | "linear"
    activation: str  # "relu" | "tanh"
    hidden: list[tuple[np.ndarray, np.ndarray]]  # [(W [out, in], b [out])] per hidden layer
    W_mu: np.ndarray  # (A, H)
    b_mu: np.ndarray  # (A,), zeros for "linear"
    act_low: np.ndarray  # (A,)
    act_high: np.ndarray  # (A,)
    W_logstd: np.ndarray | None = None  # (A, H), squashed_gaussian
    b_logstd: np.ndarray | None = None  # (A,), squashed_gaussian
    log_std: np.ndarray | None = None  # (A,), gaussian
    obs_mean: np.ndarray | None = None  # (S',) with S' = S (+1 with the time feature)
    obs_var: np.ndarray | None = None
    clip_obs: float = 10.0
    epsilon: float = 1e-8
    time_feature: bool = False
    source: str = ""  # where it was read from, for the dataset metadata
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("squashed_gaussian", "gaussian", "linear"):
            raise DataError(f"policy {self.name}: unknown kind {self.kind!r}; expected squashed_gaussian, gaussian or linear")
        if self.activation not in _ACTIVATIONS:
            raise DataError(f"policy {self.name}: unknown activation {self.activation!r}; expected relu or tanh")
        if self.kind == "squashed_gaussian" and (self.W_logstd is None or self.b_logstd is None):
            raise DataError(f"policy {self.name}: a squashed_gaussian policy needs W_logstd and b_logstd")

    @property
    def obs_dim(self) -> int:
        """Size of the environment observation the policy expects (without the time feature)."""
        first = self.hidden[0][0] if self.hidden else self.W_mu
        return first.shape[1] - int(self.time_feature)

    @property
    def act_dim(self) -> int:
        return self.W_mu.shape[0]

    def _features(self, obs: np.ndarray, t: np.ndarray | None) -> np.ndarray:
        """(N, S) raw observations and (N,) episode steps -> (N, H) last hidden activation."""
        x = np.asarray(obs, dtype=np.float64)
        if self.time_feature:
            steps = np.zeros(len(x)) if t is None else np.asarray(t, dtype=np.float64)
            x = np.concatenate([x, (1.0 - steps / MAX_EPISODE_STEPS)[:, None]], axis=1)  # (N, S) -> (N, S+1)
        if self.obs_mean is not None:
            x = np.clip((x - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon), -self.clip_obs, self.clip_obs)
        act = _ACTIVATIONS[self.activation]
        for W, b in self.hidden:
            x = act(x @ W.T + b)
        return x

    def act(
        self,
        obs: np.ndarray,
        t: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        deterministic: bool = False,
    ) -> np.ndarray:
        """(N, S) observations, (N,) steps within the episode -> (N, A) float64 actions in bounds."""
        h = self._features(obs, t)
        mu = h @ self.W_mu.T + self.b_mu
        if not deterministic and rng is None:
            raise ValueError("a stochastic action needs a numpy Generator")
        if self.kind == "squashed_gaussian":
            if not deterministic:
                log_std = np.clip(h @ self.W_logstd.T + self.b_logstd, LOG_STD_MIN, LOG_STD_MAX)
                mu = mu + np.exp(log_std) * rng.standard_normal(mu.shape)
            squashed = np.tanh(mu)  # in [-1, 1]; SB3 rescales it to the bounds
            return self.act_low + 0.5 * (squashed + 1.0) * (self.act_high - self.act_low)
        if not deterministic and self.log_std is not None:
            mu = mu + np.exp(self.log_std) * rng.standard_normal(mu.shape)
        return np.clip(mu, self.act_low, self.act_high)


@dataclass
class RandomPolicy:
    """Uniform actions in the bounds: D4RL's `random` datasets."""

    act_low: np.ndarray
    act_high: np.ndarray
    name: str = "random"
    source: str = "uniform in the action bounds"
    kind: str = "random"

    @property
    def act_dim(self) -> int:
        return len(self.act_low)

    def act(self, obs, t=None, rng=None, deterministic=False) -> np.ndarray:
        return rng.uniform(self.act_low, self.act_high, size=(len(obs), self.act_dim))


# ----------------------------------------------------------------------------------------------
# Readers


def describe_source(path: Path) -> str:
    """File name and content hash: identifies the policy without recording a local folder."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{path.name} (sha256 {digest})"


def load_npz(path: str | Path) -> MlpPolicy:
    """Read a policy in the behaviour-policies `.npz` format."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: policy file not found; give an existing .npz or SB3 .zip file")
    try:
        with np.load(path, allow_pickle=False) as d:
            z = {k: d[k] for k in d.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz policy ({exc}); re-create it from its SB3 zip") from exc
    missing = [k for k in ("kind", "activation", "n_hidden", "W_mu", "act_low", "act_high") if k not in z]
    if missing:
        raise DataError(f"{path}: policy file lacks keys {missing}; see behavior-policies/README.md for the format")
    n_hidden = int(z["n_hidden"])
    hidden = [(z[f"W{i}"], z[f"b{i}"]) for i in range(n_hidden)]
    act_dim = z["W_mu"].shape[0]
    has_norm = "obs_mean" in z
    return MlpPolicy(
        name=path.stem,
        kind=str(z["kind"]),
        activation=str(z["activation"]),
        hidden=hidden,
        W_mu=z["W_mu"],
        b_mu=z.get("b_mu", np.zeros(act_dim)),
        act_low=z["act_low"].astype(np.float64),
        act_high=z["act_high"].astype(np.float64),
        W_logstd=z.get("W_logstd"),
        b_logstd=z.get("b_logstd"),
        log_std=z.get("log_std"),
        obs_mean=z["obs_mean"] if has_norm else None,
        obs_var=z["obs_var"] if has_norm else None,
        clip_obs=float(z.get("clip_obs", 10.0)),
        epsilon=float(z.get("epsilon", 1e-8)),
        time_feature=bool(z.get("time_feature", False)),
        source=describe_source(path),
    )


# SB3 algorithm name (from the zip's `data` JSON) -> policy kind.
_SB3_KINDS = {"SAC": "squashed_gaussian", "TQC": "squashed_gaussian", "PPO": "gaussian", "A2C": "gaussian", "TRPO": "gaussian"}


def _sb3_algorithm(data: dict, names: list[str]) -> str:
    """Guess the algorithm: the policy class's module path names it (`stable_baselines3.sac.policies`)."""
    text = json.dumps(data.get("policy_class", "")) + " " + " ".join(names)
    for algo in _SB3_KINDS:
        if re.search(rf"\b{algo.lower()}\b|[._]{algo.lower()}[._]", text.lower()):
            return algo
    if any(k.startswith("actor.mu.") for k in names):
        return "SAC"
    if "log_std" in names:
        return "PPO"
    raise DataError("cannot tell the algorithm of this SB3 zip; supported: SAC, TQC, PPO, A2C, TRPO")


def _sb3_activation(data: dict, algo: str) -> str:
    """`policy_kwargs.activation_fn` as SB3 writes it ("<class 'torch.nn...ReLU'>"), else its default."""
    kwargs = data.get("policy_kwargs") or {}
    text = str(kwargs.get("activation_fn", "")) if isinstance(kwargs, dict) else ""
    if "Tanh" in text:
        return "tanh"
    if "ReLU" in text:
        return "relu"
    if text:
        raise DataError(f"unsupported activation {text!r} in the SB3 zip; supported: ReLU, Tanh")
    return "relu" if _SB3_KINDS[algo] == "squashed_gaussian" else "tanh"  # SB3's defaults


def _sb3_bounds(data: dict, act_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Action bounds from the JSON's readable `action_space` fields; [-1, 1] when absent."""
    space = data.get("action_space") or {}
    bounds = []
    for key in ("low", "high"):
        text = str(space.get(key, space.get(f"{key}_repr", "")))
        nums = [float(v) for v in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|[-+]?inf", text)]
        if len(nums) == 1:
            nums = nums * act_dim
        bounds.append(np.array(nums, dtype=np.float64) if len(nums) == act_dim else None)
    low = bounds[0] if bounds[0] is not None else -np.ones(act_dim)
    high = bounds[1] if bounds[1] is not None else np.ones(act_dim)
    return low, high


def _linear_chain(sd: dict, prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The Linear layers of an `nn.Sequential` under prefix, in order (`prefix.0.weight`, `prefix.2.weight`...)."""
    indices = sorted({int(m.group(1)) for k in sd if (m := re.match(rf"{re.escape(prefix)}\.(\d+)\.weight$", k))})
    return [(sd[f"{prefix}.{i}.weight"], sd[f"{prefix}.{i}.bias"]) for i in indices]


def load_sb3_zip(path: str | Path) -> MlpPolicy:
    """Read the actor of an SB3 SAC/TQC/PPO/A2C/TRPO save file, without importing SB3."""
    import torch  # torch is a core dependency; imported here to keep `load_npz` numpy-only

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: policy file not found; give an existing .npz or SB3 .zip file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "policy.pth" not in names or "data" not in names:
                raise DataError(f"{path}: not a Stable-Baselines3 save file (needs policy.pth and data inside the zip)")
            data = json.loads(zf.read("data").decode("utf-8"))
            state = torch.load(io.BytesIO(zf.read("policy.pth")), map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, json.JSONDecodeError, RuntimeError, OSError) as exc:
        raise DataError(f"{path}: unreadable SB3 zip ({exc}); download or save it again") from exc
    sd = {k: v.detach().double().numpy() for k, v in state.items()}
    algo = _sb3_algorithm(data, list(sd))
    kind = _SB3_KINDS[algo]
    if kind == "squashed_gaussian":
        if "actor.log_std.weight" not in sd:
            raise DataError(f"{path}: gSDE actors are not supported; re-train without use_sde")
        hidden = _linear_chain(sd, "actor.latent_pi")
        W_mu, b_mu = sd["actor.mu.weight"], sd["actor.mu.bias"]
        extra = dict(W_logstd=sd["actor.log_std.weight"], b_logstd=sd["actor.log_std.bias"])
    else:
        hidden = _linear_chain(sd, "mlp_extractor.policy_net")
        W_mu, b_mu = sd["action_net.weight"], sd["action_net.bias"]
        if "log_std" not in sd:
            raise DataError(f"{path}: only Box-action Gaussian policies are supported (no log_std in the zip)")
        extra = dict(log_std=sd["log_std"])
    low, high = _sb3_bounds(data, W_mu.shape[0])
    return MlpPolicy(
        name=path.stem,
        kind=kind,
        activation=_sb3_activation(data, algo),
        hidden=hidden,
        W_mu=W_mu,
        b_mu=b_mu,
        act_low=low,
        act_high=high,
        source=describe_source(path),
        extra={"algorithm": algo},
        **extra,
    )


def load_policy(path: str | Path, obs_dim: int | None = None) -> MlpPolicy:
    """Read a `.npz` or SB3 `.zip` policy; with obs_dim, check it fits the environment."""
    path = Path(path)
    if path.suffix == ".zip":
        policy = load_sb3_zip(path)
        if obs_dim is not None and policy.obs_dim == obs_dim + 1:
            policy.time_feature = True  # rl-zoo's TimeFeatureWrapper adds one input
    elif path.suffix == ".npz":
        policy = load_npz(path)
    else:
        raise DataError(f"{path}: unknown policy format {path.suffix!r}; expected .npz or an SB3 .zip")
    if obs_dim is not None and policy.obs_dim != obs_dim:
        raise DataError(
            f"{path}: the policy takes observations of size {policy.obs_dim}, the environment gives {obs_dim}; "
            "pick a policy trained on this environment"
        )
    return policy
