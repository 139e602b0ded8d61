"""Our trunk in token order r-s-a equals Decision Transformer's own forward, to 1e-10 in float64.

`ReferenceDecisionTransformer` below re-implements, with plain torch ops and in the style of
kzl/decision-transformer (gym/decision_transformer/models/decision_transformer.py plus the GPT-2
of `transformers` it calls, with DT's position embeddings removed), the forward pass:

    embeddings of R_t, s_t, a_t, each + the timestep embedding of t
    stack((returns, states, actions), dim=1).permute(0, 2, 1, 3).reshape(B, 3K, H)
    LayerNorm (embed_ln); attention mask stacked 3x the same way
    GPT-2 blocks: x + attn(ln_1(x)) with Conv1D weights (x @ W + b), causal mask and additive
    padding mask (finfo.min), then x + mlp(ln_2(x)); ln_f
    x.reshape(B, K, 3, H).permute(0, 2, 1, 3); action_preds = tanh(predict_action(x[:, 1]))

It takes its weights from a `SequencePolicy` (so both have identical weights) but shares no code
with it: no module of `dema.models` is called.
"""

import dataclasses
import math

import pytest
import torch

from dema.models.config import Activation, TokenOrder

from tiny_models import random_batch, tiny_policy


def _layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def _conv1d(x, weight, bias):
    """transformers' Conv1D: weight is (in, out)."""
    size_out = x.size()[:-1] + (weight.size(-1),)
    return torch.addmm(bias, x.reshape(-1, x.size(-1)), weight).view(size_out)


class ReferenceDecisionTransformer:
    def __init__(self, policy):
        sd = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        cfg = policy.cfg
        self.hidden_size, self.n_head, self.n_layer = cfg.d_model, cfg.n_head, cfg.n_layer
        self.embed_timestep = sd["embed_timestep.weight"]  # nn.Embedding(max_ep_len, hidden_size)
        self.embed_return = (sd["embed_return.weight"], sd["embed_return.bias"])  # nn.Linear(1, hidden_size)
        self.embed_state = (sd["embed_state.weight"], sd["embed_state.bias"])  # nn.Linear(state_dim, hidden_size)
        self.embed_action = (sd["embed_action.weight"], sd["embed_action.bias"])  # nn.Linear(act_dim, hidden_size)
        self.embed_ln = (sd["embed_norm.weight"], sd["embed_norm.bias"])
        self.h = []
        for i in range(self.n_layer):
            p = f"blocks.{i}."
            self.h.append(dict(
                ln_1=(sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]),
                c_attn=(sd[p + "mixer.c_attn.weight"].T, sd[p + "mixer.c_attn.bias"]),  # Conv1D: (in, out)
                c_proj=(sd[p + "mixer.c_proj.weight"].T, sd[p + "mixer.c_proj.bias"]),
                ln_2=(sd[p + "ln_2.weight"], sd[p + "ln_2.bias"]),
                c_fc=(sd[p + "mlp.c_fc.weight"].T, sd[p + "mlp.c_fc.bias"]),
                mlp_proj=(sd[p + "mlp.c_proj.weight"].T, sd[p + "mlp.c_proj.bias"]),
            ))
        self.ln_f = (sd["final_norm.weight"], sd["final_norm.bias"])
        self.predict_action = (sd["action_head.weight"], sd["action_head.bias"])

    # ---------------------------------------------------------------- GPT-2 (no wpe, eval mode)
    def _attn(self, x, layer, attention_mask):
        batch, length, width = x.shape
        head_dim = width // self.n_head
        query, key, value = _conv1d(x, *layer["c_attn"]).split(width, dim=2)

        def split_heads(t):  # (B, L, H*d) -> (B, H, L, d)
            return t.view(batch, length, self.n_head, head_dim).permute(0, 2, 1, 3)

        query, key, value = split_heads(query), split_heads(key), split_heads(value)
        w = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(head_dim)
        causal_mask = torch.tril(torch.ones(length, length, dtype=torch.bool)).view(1, 1, length, length)
        mask_value = torch.finfo(w.dtype).min
        w = torch.where(causal_mask, w, torch.tensor(mask_value, dtype=w.dtype))
        w = w + attention_mask
        w = torch.softmax(w, dim=-1)
        a = torch.matmul(w, value)
        a = a.permute(0, 2, 1, 3).contiguous().view(batch, length, width)  # merge heads
        return _conv1d(a, *layer["c_proj"])

    def _transformer(self, inputs_embeds, attention_mask):
        # GPT2Model: extended attention mask (B, 1, 1, L), 0 to keep and finfo.min to drop
        attention_mask = attention_mask[:, None, None, :].to(inputs_embeds.dtype)
        attention_mask = (1.0 - attention_mask) * torch.finfo(inputs_embeds.dtype).min
        hidden_states = inputs_embeds  # DT's GPT-2 has no position embeddings (wpe removed)
        for layer in self.h:
            a = self._attn(_layer_norm(hidden_states, *layer["ln_1"]), layer, attention_mask)
            hidden_states = hidden_states + a
            m = _conv1d(_layer_norm(hidden_states, *layer["ln_2"]), *layer["c_fc"])
            hidden_states = hidden_states + _conv1d(torch.relu(m), *layer["mlp_proj"])
        return _layer_norm(hidden_states, *self.ln_f)

    # ---------------------------------------------------------------- DecisionTransformer.forward
    def forward(self, states, actions, rewards, returns_to_go, timesteps, attention_mask=None):
        batch_size, seq_length = states.shape[0], states.shape[1]
        if attention_mask is None:
            attention_mask = torch.ones((batch_size, seq_length), dtype=torch.long)

        state_embeddings = torch.nn.functional.linear(states, *self.embed_state)
        action_embeddings = torch.nn.functional.linear(actions, *self.embed_action)
        returns_embeddings = torch.nn.functional.linear(returns_to_go, *self.embed_return)
        time_embeddings = self.embed_timestep[timesteps]

        # time embeddings are treated similar to positional embeddings
        state_embeddings = state_embeddings + time_embeddings
        action_embeddings = action_embeddings + time_embeddings
        returns_embeddings = returns_embeddings + time_embeddings

        # this makes the sequence look like (R_1, s_1, a_1, R_2, s_2, a_2, ...)
        stacked_inputs = torch.stack(
            (returns_embeddings, state_embeddings, action_embeddings), dim=1
        ).permute(0, 2, 1, 3).reshape(batch_size, 3 * seq_length, self.hidden_size)
        stacked_inputs = _layer_norm(stacked_inputs, *self.embed_ln)

        stacked_attention_mask = torch.stack(
            (attention_mask, attention_mask, attention_mask), dim=1
        ).permute(0, 2, 1).reshape(batch_size, 3 * seq_length)

        x = self._transformer(stacked_inputs, stacked_attention_mask)

        # x[:, 0] returns, x[:, 1] states, x[:, 2] actions
        x = x.reshape(batch_size, seq_length, 3, self.hidden_size).permute(0, 2, 1, 3)
        # predict next action given state
        action_preds = torch.tanh(torch.nn.functional.linear(x[:, 1], *self.predict_action))
        return action_preds


def _dt_policy(**overrides):
    """Our DT in DT's order, E == D (DT has no projection between them), random non-trivial weights
    (biases and LayerNorm affine included, which GPT-2's initialisation leaves at 0 and 1)."""
    policy = tiny_policy("dt", token_order=TokenOrder.RETURN_STATE_ACTION, embed_dim=8, d_model=8, **overrides)
    assert policy.cfg.activation is Activation.RELU and policy.cfg.embed_norm and policy.cfg.position_embedding
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return policy


@pytest.mark.parametrize("n_head, n_layer", [(1, 2), (2, 3), (4, 1)])
def test_rsa_equals_decision_transformer_forward(n_head, n_layer):
    policy = _dt_policy(n_head=n_head, n_layer=n_layer)
    reference = ReferenceDecisionTransformer(policy)
    batch = random_batch(batch_size=3, length=6, start=5)
    expected = reference.forward(batch.states, batch.actions, None, batch.returns_to_go, batch.timesteps)
    assert expected.shape == (3, 6, 3)
    torch.testing.assert_close(policy(batch), expected, rtol=1e-10, atol=1e-10)


def test_rsa_equals_decision_transformer_on_a_left_padded_acting_window():
    """DT's get_action: left-pad with zeros and attention_mask 0, the current action zero."""
    policy = _dt_policy(n_head=2)
    reference = ReferenceDecisionTransformer(policy)
    real, pad = random_batch(batch_size=2, length=4, start=0), 2
    window = dataclasses.replace(real)
    for name in ("states", "actions", "prev_actions", "returns_to_go", "timesteps"):
        value = getattr(real, name)
        setattr(window, name, torch.cat([torch.zeros(2, pad, *value.shape[2:], dtype=value.dtype), value], dim=1))
    window.actions[:, -1] = 0  # a_t is not taken yet
    window.mask = torch.cat([torch.zeros(2, pad, dtype=torch.bool), real.mask], dim=1)
    attention_mask = window.mask.long()
    expected = reference.forward(window.states, window.actions, None, window.returns_to_go, window.timesteps,
                                 attention_mask=attention_mask)
    torch.testing.assert_close(policy(window)[:, pad:], expected[:, pad:], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(policy.predict_last(window), expected[:, -1], rtol=1e-10, atol=1e-10)


def test_the_reference_is_not_todays_order():
    """Sanity of the reference: the same weights in order r-aprev-s do not match it."""
    policy = _dt_policy(n_head=2)
    reference = ReferenceDecisionTransformer(policy)
    today = tiny_policy("dt", token_order=TokenOrder.RETURN_PREV_ACTION_STATE, embed_dim=8, d_model=8, n_head=2)
    today.load_state_dict(policy.state_dict())
    batch = random_batch()
    expected = reference.forward(batch.states, batch.actions, None, batch.returns_to_go, batch.timesteps)
    assert not torch.allclose(today(batch), expected, atol=1e-3)
