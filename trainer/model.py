"""BERT for pretraining: encoder, pooler, MLM head and NSP head, in one file.

Post-LN transformer as in Devlin et al. (2018), initialised as google-research/bert does
(normal std 0.02, zero biases, LayerNorm 1/0). Attention goes through
``F.scaled_dot_product_attention`` so PyTorch picks a fused kernel. The MLM head runs only at
the masked positions: at sequence 128 with 20 predictions that skips ~85% of the largest
matmul of the model (hidden x vocab). For the same reason the last layer computes only the rows
that leave the encoder ([CLS] and the predictions; every position stays a key and value): a
twelfth of BERT-base's encoder shrinks to a third.

Packed rows (``doc_ids`` from the loader, full-sentences builds) keep attention inside each
document: a query sees only the keys of its own document piece, padding only padding, and
positions restart at each piece, so a packed row computes what its documents would alone. On CPU
(and whenever attention dropout is active: FlexAttention has none) this is an explicit boolean
mask (B, 1, T, T) through ``scaled_dot_product_attention``; on CUDA without attention dropout it
is FlexAttention with a block mask of the same rule, which skips the blocks across documents.
Without NSP/SOP labels (``nsp=False``) the pooler and NSP head are not run at all.

Shapes in comments: B batch, T sequence, H hidden, nh heads, hs head size, P predictions, V vocab.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

try:  # FlexAttention (torch >= 2.5): the fused kernel for document masks on CUDA
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError:  # pragma: no cover - older torch: explicit masks only
    BlockMask = create_block_mask = flex_attention = None

from corpusgen.shards import NSP_IGNORE

# The label the losses skip (padding of masked_labels, next_sentence_label without NSP): the shard
# format's "no label", which is also torch's default ignore_index.
IGNORE = NSP_IGNORE

# name: (num_hidden_layers, hidden_size, num_attention_heads); intermediate is 4x hidden
SIZES = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0

    @classmethod
    def from_size(cls, size: str, **overrides) -> BertConfig:
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
        layers, hidden, heads = SIZES[size]
        base = dict(
            num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=4 * hidden
        )
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


class Embeddings(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.ln = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.p = cfg.hidden_dropout_prob

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        word_weight: torch.Tensor | None = None,  # the word table as the lookup sees it (``tied_word_weights``)
    ) -> torch.Tensor:
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device) if position_ids is None else position_ids  # (T) or (B, T)
        # The word table is tied to the MLM decoder, whose gradient is dense anyway; the lookup's own
        # gradient goes in sparse (B*T rows) and is added to it, instead of as a second dense (V, H)
        # tensor zeroed and summed each step: ~8% of a BERT-base step on CPU. Eager CPU only: on a
        # GPU the dense pair is cheap, and the compilers do not take sparse gradients.
        sparse = not input_ids.is_cuda and not torch.compiler.is_compiling()
        words = F.embedding(input_ids, self.word.weight if word_weight is None else word_weight, sparse=sparse)
        x = words + self.position(pos) + self.token_type(token_type_ids)  # (B, T, H)
        return dropout(self.ln(x), self.p, self.training)


class Layer(nn.Module):
    """One post-LN block: x = LN(x + Attn(x)); x = LN(x + MLP(x))."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        H = cfg.hidden_size
        if H % cfg.num_attention_heads:
            raise ValueError(f"hidden_size {H} is not a multiple of num_attention_heads {cfg.num_attention_heads}")
        self.nh = cfg.num_attention_heads
        self.qkv = nn.Linear(H, 3 * H)  # one matmul for q, k, v; export splits it into query/key/value
        self.proj = nn.Linear(H, H)
        self.ln1 = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.fc1 = nn.Linear(H, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, H)
        self.ln2 = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.attn_drop = cfg.attention_probs_dropout_prob
        self.p = cfg.hidden_dropout_prob

    def forward(self, x: torch.Tensor, mask, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H) -> (B, T, H); with ``keep`` (B, K) positions, only those rows: (B, K, H).

        ``mask``: None, a bool tensor (B, 1, 1 or T or K, T), True = attend, or a FlexAttention
        ``BlockMask`` (packed rows; see ``document_attention``).

        Every position still serves as a key and value, so the kept rows equal the full layer's
        there; the rest of the layer (queries, projection, MLP) runs on K rows instead of T.
        """
        B, T, H = x.shape
        nh, hs = self.nh, H // self.nh
        if keep is None:
            q, k, v = self.qkv(x).view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs)
        else:
            w, b = self.qkv.weight, self.qkv.bias  # rows: q, k, v
            k, v = F.linear(x, w[H:], b[H:]).view(B, T, 2, nh, hs).permute(2, 0, 3, 1, 4)  # 2 x (B, nh, T, hs)
            x = torch.gather(x, 1, keep[:, :, None].expand(-1, -1, H))  # (B, K, H)
            q = F.linear(x, w[:H], b[:H]).view(B, -1, nh, hs).transpose(1, 2)  # (B, nh, K, hs)
        if BlockMask is not None and isinstance(mask, BlockMask):
            a = _flex(q.device)(q, k, v, block_mask=mask)  # (B, nh, T or K, hs)
        else:
            a = attention(q, k, v, mask, self.attn_drop if self.training else 0.0)
        a = a.transpose(1, 2).reshape(B, -1, H)  # (B, T or K, H)
        x = self.ln1(x + dropout(self.proj(a), self.p, self.training))
        return self.ln2(x + dropout(self.fc2(F.gelu(self.fc1(x))), self.p, self.training))


class BertForPreTraining(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        H = cfg.hidden_size
        self.emb = Embeddings(cfg)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.pooler = nn.Linear(H, H)
        self.mlm_dense = nn.Linear(H, H)
        self.mlm_ln = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))  # decoder weight is emb.word.weight (tied)
        self.nsp = nn.Linear(H, 2)
        self.apply(self._init_weights)
        self.document_attention = "auto"
        """Packed rows: "auto" (FlexAttention on CUDA when attention dropout is off, else a mask),
        "mask" or "flex" (any device; on CPU FlexAttention runs unfused: for tests)."""

    def _init_weights(self, m: nn.Module) -> None:
        std = self.cfg.initializer_range
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode(
        self,
        input_ids,
        token_type_ids=None,
        attention_mask=None,
        keep=None,
        doc_ids=None,
        position_ids=None,
        word_weight=None,
    ) -> torch.Tensor:
        """Final hidden states (B, T, H), or with ``keep`` (B, K) positions only those: (B, K, H).

        ``doc_ids`` (B, T): packed rows, attention only within each document piece (-1: padding).
        """
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        # bool mask (B, 1, 1, T): True = attend; broadcast over heads and query positions
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        last_mask = mask
        if doc_ids is not None:
            flex = self.document_attention == "flex" or (
                self.document_attention == "auto"
                and doc_ids.is_cuda
                and flex_attention is not None
                and not (self.training and self.cfg.attention_probs_dropout_prob > 0)
            )
            mask = document_attention(doc_ids, doc_ids, flex)
            last_mask = mask if keep is None else document_attention(torch.gather(doc_ids, 1, keep), doc_ids, flex)
        x = self.emb(input_ids, token_type_ids, position_ids, word_weight)
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            x = layer(x, last_mask if last else mask, keep if last else None)
        return x

    def mlm_logits(self, h: torch.Tensor, decoder_weight: torch.Tensor | None = None) -> torch.Tensor:
        h = self.mlm_ln(F.gelu(self.mlm_dense(h)))
        if decoder_weight is None:
            return F.linear(h, self.emb.word.weight, self.mlm_bias)
        return _Decoder.apply(h, decoder_weight, self.mlm_bias)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) long
        token_type_ids: torch.Tensor | None = None,  # (B, T) long
        attention_mask: torch.Tensor | None = None,  # (B, T) bool/int, 1 = real token
        masked_positions: torch.Tensor | None = None,  # (B, P) long; None: MLM logits at every position
        masked_labels: torch.Tensor | None = None,  # (B, P) long, IGNORE where padded
        next_sentence_label: torch.Tensor | None = None,  # (B,) long, IGNORE where there is no NSP
        doc_ids: torch.Tensor | None = None,  # (B, T) long: packed rows' document pieces, -1 on padding
        position_ids: torch.Tensor | None = None,  # (B, T) long: positions restarting at each piece
        nsp: bool = True,  # False: MLM only, the pooler and NSP head are not run (no logits, no loss)
        **_: torch.Tensor,  # other batch keys (masked_valid, ...) are accepted and unused
    ) -> dict[str, torch.Tensor]:
        word_weight, decoder_weight = tied_word_weights(self.emb.word.weight)
        packed = {"doc_ids": doc_ids, "position_ids": position_ids, "word_weight": word_weight}
        if masked_positions is not None:
            # only [CLS] and the P predictions leave the encoder: the last layer and the MLM head (with
            # its H x V decoder) run on 1 + P rows instead of T
            keep = torch.cat([torch.zeros_like(masked_positions[:, :1]), masked_positions], 1)  # (B, 1 + P)
            h = self.encode(input_ids, token_type_ids, attention_mask, keep, **packed)  # (B, 1 + P, H)
            h_mlm = h[:, 1:]  # (B, P, H)
        else:
            h = h_mlm = self.encode(input_ids, token_type_ids, attention_mask, **packed)  # (B, T, H)
        mlm_logits = self.mlm_logits(h_mlm, decoder_weight)  # (B, P, V) or (B, T, V)
        out = {"mlm_logits": mlm_logits}
        if nsp:
            out["nsp_logits"] = self.nsp(torch.tanh(self.pooler(h[:, 0])))  # (B, 2)
        if masked_labels is not None:
            out["mlm_loss"] = masked_mean_ce(mlm_logits, masked_labels)
            out["loss"] = out["mlm_loss"]
        if next_sentence_label is not None and nsp:
            out["nsp_loss"] = masked_mean_ce(out["nsp_logits"], next_sentence_label)
            out["loss"] = out.get("loss", 0.0) + out["nsp_loss"]
        return out


def tied_word_weights(weight: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The word table twice, (for the lookup, for the MLM decoder), or (None, None): use it as it is.

    In eager CPU training the two gradients meet in ``_TiedWeight.backward``, which adds the
    lookup's sparse rows into the decoder's dense gradient in place. Left to the autograd engine,
    a dense gradient that arrives first and a sparse one are summed out of place: a fresh (V, H)
    tensor and a copy of the decoder's gradient every step (~140 ms of a 2 s BERT-base step on 2
    CPU cores). On CUDA, in compiled graphs and without gradients nothing changes.
    """
    if weight.is_cuda or torch.compiler.is_compiling() or not (torch.is_grad_enabled() and weight.requires_grad):
        return None, None
    return _TiedWeight.apply(weight)


class _TiedWeight(torch.autograd.Function):
    """One weight as two tensors whose gradients are summed here: dense += sparse, in place."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor):
        ctx.set_materialize_grads(False)  # an unused copy's gradient stays None, not a (V, H) zero tensor
        return weight.view_as(weight), weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad_lookup, grad_decoder):
        if grad_lookup is None or grad_decoder is None:
            return grad_decoder if grad_lookup is None else grad_lookup
        if grad_lookup.is_sparse and not grad_decoder.is_sparse and grad_decoder.is_contiguous():
            return grad_decoder.add_(grad_lookup)  # the decoder's gradient is _Decoder's own new tensor
        return grad_decoder + grad_lookup


class _Decoder(torch.autograd.Function):
    """``F.linear(h, weight, bias)`` for the (V, H) decoder, whose weight gradient comes out as
    ``g.T @ h``: (V, H) and contiguous like the parameter (``F.linear``'s is the transpose of an
    (H, V) product, which the engine then copies into the parameter's layout)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, weight)
        return F.linear(h, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])  # (N, V)
        dt = g.dtype  # under autocast the product ran in its dtype: the gradients do too
        grad_h = (g @ weight.to(dt)).view(h.shape) if ctx.needs_input_grad[0] else None
        grad_w = g.t() @ h.reshape(-1, h.shape[-1]).to(dt) if ctx.needs_input_grad[1] else None
        grad_b = g.sum(0) if ctx.needs_input_grad[2] else None
        return grad_h, grad_w, grad_b


class _Dropout(torch.autograd.Function):
    """Inverted dropout whose keep mask is ``uniform >= p``: on CPU ``rand`` and a compare take a
    third of the time of the ``bernoulli_`` that ``F.dropout`` draws with (7 ms -> 2.5 ms for a
    BERT-base activation of batch 8), at the same rate. The mask is kept as bytes, as torch's is."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = torch.rand(x.shape, device=x.device) >= p  # fp32 draws: exact rate for bf16 activations too
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return x * keep * ctx.scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad * keep * ctx.scale, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout``, drawn faster on CPU (``_Dropout``); CUDA keeps torch's fused kernel, compiled
    graphs their own."""
    if not training or p == 0.0:
        return x
    if x.is_cuda or torch.compiler.is_compiling():
        return F.dropout(x, p, True)
    return _Dropout.apply(x, p)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask, p: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs)) v, with dropout ``p`` on the probabilities; ``mask`` True = attend.

    ``scaled_dot_product_attention`` unless attention dropout is on in eager CPU code: there torch
    falls back to this same unfused math with ``bernoulli_`` masks, and ``dropout`` draws them in a
    third of the time.
    """
    if p == 0.0 or q.is_cuda or torch.compiler.is_compiling():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)  # (B, nh, Q, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return dropout(scores.softmax(-1), p, True) @ v


def document_attention(q_doc: torch.Tensor, kv_doc: torch.Tensor, flex: bool):
    """Attention kept inside documents: query i may see key j iff both lie in the same piece.

    ``q_doc`` (B, Q), ``kv_doc`` (B, T): document piece of each query and key position (-1 =
    padding, which sees only padding, so no row of the mask is empty). Returns a bool mask
    (B, 1, Q, T) for ``scaled_dot_product_attention``, or with ``flex`` a FlexAttention BlockMask of
    the same rule (blocks with no pair in one document are skipped by the kernel).
    """
    if not flex:
        return (q_doc[:, :, None] == kv_doc[:, None, :])[:, None]  # (B, 1, Q, T)
    if create_block_mask is None:
        raise RuntimeError("FlexAttention needs torch >= 2.5; use document_attention='mask'")

    def same_document(b, h, q, kv):
        return q_doc[b, q] == kv_doc[b, kv]

    B, Q = q_doc.shape
    # compiled on CUDA: the eager builder evaluates the rule densely (B x Q x T), too much at 8,192
    return create_block_mask(same_document, B, None, Q, kv_doc.shape[1], device=q_doc.device, _compile=q_doc.is_cuda)


_FLEX: dict[str, object] = {}


def _flex(device: torch.device):
    """flex_attention, compiled once on CUDA (its fused kernel); eager elsewhere (an unfused reference)."""
    if device.type != "cuda":
        return flex_attention
    if "cuda" not in _FLEX:
        _FLEX["cuda"] = torch.compile(flex_attention, dynamic=False)
    return _FLEX["cuda"]


def masked_mean_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over labels != IGNORE, and 0 (not NaN) when there are none.

    ``F.cross_entropy(reduction="mean")`` gives NaN for an all-ignored batch (a no-NSP build) and
    dividing by a clamped count keeps the graph free of a host sync.
    """
    labels = labels.reshape(-1)
    total = F.cross_entropy(logits.reshape(labels.numel(), -1).float(), labels, ignore_index=IGNORE, reduction="sum")
    return total / (labels != IGNORE).sum().clamp(min=1)


def flops_per_sequence(cfg: BertConfig, seq_len: int, predictions: int | None = None) -> float:
    """Training FLOPs (forward + backward = 3x forward, 2 per multiply-add) of one sequence.

    ``predictions``: positions the MLM head runs at (None: all ``seq_len``), as the model does; then
    the last layer computes 1 + P rows (queries, projection, MLP) over T keys and values.
    Counts matmuls only (attention scores included), the usual MFU convention.
    """
    H, L, F_, V, T = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, cfg.vocab_size, seq_len
    P = T if predictions is None else predictions
    K = T if predictions is None else 1 + P  # rows of the last layer

    def layer(rows: int) -> int:  # multiply-adds: q + proj + mlp on the rows, k + v on all T, scores and sum
        return rows * (2 * H * H + 2 * H * F_) + T * 2 * H * H + 2 * rows * T * H

    heads = P * (H * H + H * V) + H * H + 2 * H  # MLM transform + decoder, pooler, NSP
    return 6.0 * ((L - 1) * layer(T) + layer(K) + heads)


def expected_init_loss(vocab_size: int) -> float:
    return math.log(vocab_size)
