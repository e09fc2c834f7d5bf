import math

import pytest
import torch

from trainer.model import (
    SIZES,
    BertConfig,
    BertForPreTraining,
    attention,
    dropout,
    flops_per_sequence,
    masked_mean_ce,
)


def batch(B=3, T=24, P=5, V=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    lengths = torch.tensor([T, T - 5, T - 11])[:B]
    mask = torch.arange(T)[None] < lengths[:, None]
    types = ((torch.arange(T)[None] >= (lengths[:, None] // 2)) & mask).long()
    positions = torch.stack([torch.randperm(int(n) - 1, generator=g)[:P].sort().values + 1 for n in lengths])
    labels = torch.randint(5, V, (B, P), generator=g)
    labels[1, -2:] = -100
    return {
        "input_ids": ids * mask,
        "token_type_ids": types,
        "attention_mask": mask,
        "masked_positions": positions,
        "masked_labels": labels,
        "next_sentence_label": torch.tensor([0, 1, -100])[:B],
    }


def test_sizes_follow_the_paper():
    assert SIZES["tiny"] == (2, 128, 2) and SIZES["base"] == (12, 768, 12) and SIZES["large"] == (24, 1024, 16)
    cfg = BertConfig.from_size("mini")
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (4, 256, 4, 1024)
    with pytest.raises(ValueError, match="unknown model size"):
        BertConfig.from_size("huge")


def test_base_has_bert_base_parameter_count():
    with torch.device("meta"):
        model = BertForPreTraining(BertConfig.from_size("base"))
    # google-research/bert BERT-base with pretraining heads: 110.1M
    assert 109.5e6 < model.num_params() < 110.5e6


def test_shapes_and_losses():
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.from_size("tiny", vocab_size=100))
    out = model(**batch())
    assert out["mlm_logits"].shape == (3, 5, 100)
    assert out["nsp_logits"].shape == (3, 2)
    assert torch.allclose(out["loss"], out["mlm_loss"] + out["nsp_loss"])
    out["loss"].backward()
    assert model.emb.word.weight.grad is not None


def test_init_follows_bert():
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.from_size("tiny", vocab_size=1000))
    w = model.layers[0].fc1.weight
    assert abs(w.std().item() - 0.02) < 0.001
    assert model.layers[0].fc1.bias.abs().max() == 0
    assert torch.all(model.layers[0].ln1.weight == 1) and torch.all(model.layers[0].ln1.bias == 0)
    assert model.mlm_bias.abs().max() == 0


def test_fresh_model_starts_at_ln_vocab():
    torch.manual_seed(0)
    V = 30522
    model = BertForPreTraining(BertConfig.from_size("tiny", vocab_size=V)).eval()
    b = batch(B=3, T=64, P=10, V=V)
    with torch.no_grad():
        loss = model(**b)["mlm_loss"].item()
    assert abs(loss - math.log(V)) < 0.3, loss


def test_masked_only_head_equals_full_head():
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.from_size("tiny", vocab_size=100)).eval()
    b = batch()
    with torch.no_grad():
        out = model(**b)  # the last layer computes only [CLS] and the masked rows
        full_out = model(**{**b, "masked_positions": None, "masked_labels": None})
    masked, full = out["mlm_logits"], full_out["mlm_logits"]
    torch.testing.assert_close(out["nsp_logits"], full_out["nsp_logits"], rtol=1e-5, atol=1e-5)
    gathered = torch.gather(full, 1, b["masked_positions"][:, :, None].expand(-1, -1, full.shape[-1]))
    torch.testing.assert_close(masked, gathered, rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_real_positions():
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.from_size("tiny", vocab_size=100)).eval()
    b = batch()
    short = {k: v[1:2] for k, v in b.items()}
    n = int(short["attention_mask"].sum())
    trimmed = {
        **short,
        "input_ids": short["input_ids"][:, :n],
        "token_type_ids": short["token_type_ids"][:, :n],
        "attention_mask": short["attention_mask"][:, :n],
    }
    with torch.no_grad():
        a, c = model(**short), model(**trimmed)
    torch.testing.assert_close(a["mlm_logits"], c["mlm_logits"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a["nsp_logits"], c["nsp_logits"], rtol=1e-5, atol=1e-5)


def test_all_ignored_labels_give_zero_not_nan():
    logits = torch.randn(4, 2, requires_grad=True)
    loss = masked_mean_ce(logits, torch.full((4,), -100))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_masked_head_saves_flops():
    cfg = BertConfig.from_size("base")
    full, masked = flops_per_sequence(cfg, 128), flops_per_sequence(cfg, 128, 20)
    assert masked < 0.85 * full
    # the common 6 * params * tokens estimate is within 25% of the exact count
    assert 0.75 < full / (6 * 110e6 * 128) < 1.25


def test_cpu_dropout_keeps_its_rate_scales_and_routes_the_gradient():
    torch.manual_seed(0)
    x = torch.randn(64, 128, 96, requires_grad=True)
    y = dropout(x, 0.1, True)
    keep = y != 0
    assert abs(keep.float().mean().item() - 0.9) < 0.005  # 786k draws: the rate is 0.9 to within 5 sigma
    torch.testing.assert_close(y[keep], x[keep] / 0.9)
    y.sum().backward()
    torch.testing.assert_close(x.grad, keep.float() / 0.9)  # the kept elements' scale, zero elsewhere
    assert dropout(x, 0.1, False) is x and dropout(x, 0.0, True) is x


def test_cpu_attention_with_dropout_is_the_softmax_formula():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., 5:] = False
    probs = ((q @ k.transpose(-2, -1)) / 8**0.5).masked_fill(~mask, float("-inf")).softmax(-1)
    torch.manual_seed(1)
    got = attention(q, k, v, mask, 0.25)
    torch.manual_seed(1)
    keep = torch.rand(probs.shape) >= 0.25  # the mask `dropout` draws from the same generator state
    torch.testing.assert_close(got, (probs * keep / 0.75) @ v)
    # without dropout it is torch's kernel, and the same attention
    torch.testing.assert_close(attention(q, k, v, mask, 0.0), probs @ v, rtol=1e-5, atol=1e-5)


def _tiny_model_and_batch() -> tuple[BertForPreTraining, dict]:
    """A tiny model without dropout in training mode, and a batch for it with 3 predictions a row."""
    cfg = BertConfig.from_size("tiny", vocab_size=300, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = BertForPreTraining(cfg).train()
    batch = dict(
        input_ids=torch.randint(5, 300, (4, 16)),
        masked_positions=torch.tensor([[1, 3, 5]] * 4),
        masked_labels=torch.randint(5, 300, (4, 3)),
        next_sentence_label=torch.tensor([0, 1, 0, 1]),
    )
    return model, batch


def test_sparse_word_gradient_equals_the_dense_one(monkeypatch):
    model, batch = _tiny_model_and_batch()

    def word_grad():
        model.zero_grad(set_to_none=True)
        model(**batch)["loss"].backward()
        return model.emb.word.weight.grad

    sparse = word_grad()
    assert sparse.layout == torch.strided  # the optimizer sees a dense gradient: decoder + lookup
    dense_embedding, asked_sparse = torch.nn.functional.embedding, []

    def embedding(ids, w, *args, sparse=False, **kw):
        asked_sparse.append(sparse)
        return dense_embedding(ids, w, *args, **kw)

    monkeypatch.setattr(torch.nn.functional, "embedding", embedding)
    dense = word_grad()
    assert True in asked_sparse  # the model's own lookup asks for the sparse gradient on CPU
    torch.testing.assert_close(sparse, dense)
    assert dense[batch["input_ids"].unique()].abs().sum() > 0


@pytest.mark.parametrize("autocast", [False, True])
def test_tied_word_gradients_summed_in_place_equal_the_engines_sum(monkeypatch, autocast):
    import trainer.model as model_module

    model, batch = _tiny_model_and_batch()
    used = []

    def grads():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(**batch)["loss"]
        loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    tied = model_module.tied_word_weights
    monkeypatch.setattr(model_module, "tied_word_weights", lambda w: used.append(1) or tied(w))
    split = grads()
    assert used  # the model's forward went through the split
    assert split["emb.word.weight"].layout == torch.strided and split["emb.word.weight"].is_contiguous()
    monkeypatch.setattr(model_module, "tied_word_weights", lambda w: (None, None))
    plain = grads()  # F.linear on the parameter itself; the engine sums the two gradients
    for name in plain:
        torch.testing.assert_close(split[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)
    assert split["emb.word.weight"][batch["input_ids"].unique()].abs().sum() > 0
