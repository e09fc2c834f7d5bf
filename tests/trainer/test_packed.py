"""Packed rows in the trainer: doc_ids/position_ids from doc_starts, attention kept inside documents, MLM only."""

import warnings

import numpy as np
import pyarrow as pa
import pytest
import torch

from corpusgen.shards import shard_schema
from trainer.data import collate, rows_from_record_batch
from trainer.model import BertConfig, BertForPreTraining, document_attention, flex_attention

CLS, SEP = 2, 3


def record_batch(rows: list[tuple[list[int], list[int]]]) -> pa.RecordBatch:
    schema = shard_schema(100, 16, doc_starts=True)
    return pa.RecordBatch.from_pylist(
        [
            {
                "input_ids": ids,
                "a_len": len(ids),
                "masked_positions": [1],
                "masked_labels": [ids[1]],
                "next_sentence_label": -100,
                "doc_starts": starts,
            }  # fmt: skip
            for ids, starts in rows
        ],
        schema=schema,
    )


def test_collate_gives_document_ids_and_positions_that_restart():
    rb = record_batch([([CLS, 10, 11, SEP, 20, SEP, 30, 31, SEP], [0, 4, 6]), ([CLS, 40, 41, SEP], [0])])
    batch = collate(rows_from_record_batch(rb, 16, 8, segments=True))
    assert batch["input_ids"].shape == (2, 16)
    assert batch["doc_ids"].tolist() == [
        [0, 0, 0, 0, 1, 1, 2, 2, 2] + [-1] * 7,
        [0, 0, 0, 0] + [-1] * 12,
    ]
    assert batch["position_ids"].tolist() == [
        [0, 1, 2, 3, 0, 1, 0, 1, 2] + [0] * 7,
        [0, 1, 2, 3] + [0] * 12,
    ]
    assert "doc_ids" not in collate(rows_from_record_batch(rb, 16, 8))  # doc-sentences: one piece a row


def packed_model():
    torch.manual_seed(0)
    cfg = BertConfig.from_size("tiny", vocab_size=100, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForPreTraining(cfg).eval()


@pytest.mark.parametrize("attention", ["mask", "flex"])
def test_a_packed_row_computes_what_its_documents_compute_alone(attention):
    if attention == "flex" and flex_attention is None:
        pytest.skip("FlexAttention needs torch >= 2.5")
    model = packed_model()
    model.document_attention = attention
    docs = [torch.tensor([CLS, 10, 11, 12, SEP]), torch.tensor([20, 21, SEP]), torch.tensor([30, 31, 32, 33, 34, SEP])]
    rb = record_batch([(torch.cat(docs).tolist(), [0, 5, 8])])
    batch = collate(rows_from_record_batch(rb, 16, 8, segments=True))
    keep = torch.tensor([[0, 2, 6, 9, 13]])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FlexAttention on CPU warns that it runs unfused
        args = {k: batch[k] for k in ("attention_mask", "doc_ids", "position_ids")}
        packed = model.encode(batch["input_ids"], **args)  # (1, 16, H)
        kept = model.encode(batch["input_ids"], keep=keep, **args)  # (1, 5, H)
        lo = 0
        for d in docs:
            alone = model.encode(d[None])  # (1, len, H)
            torch.testing.assert_close(packed[0, lo : lo + len(d)], alone[0], rtol=1e-5, atol=1e-5)
            lo += len(d)
    torch.testing.assert_close(kept[0], packed[0, keep[0]], rtol=1e-5, atol=1e-5)
    # without the document mask the pieces do see each other: the test can fail
    with torch.no_grad():
        leaky = model.encode(batch["input_ids"], attention_mask=batch["attention_mask"])
    assert (leaky[0, 5:8] - packed[0, 5:8]).abs().max() > 1e-3


def test_the_document_mask_never_leaves_a_query_without_keys():
    doc = torch.tensor([[0, 0, 1, -1, -1]])
    mask = document_attention(doc, doc, flex=False)
    assert mask.shape == (1, 1, 5, 5)
    assert mask[0, 0].int().tolist() == [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 1, 1],
        [0, 0, 0, 1, 1],
    ]


def test_mlm_only_runs_no_nsp_head():
    model = packed_model().train()
    ids = torch.tensor([[CLS, 10, 11, SEP]])
    calls = []
    model.pooler.register_forward_hook(lambda *_: calls.append("pooler"))
    out = model(ids, masked_positions=torch.tensor([[1]]), masked_labels=torch.tensor([[10]]),
                next_sentence_label=torch.tensor([-100]), nsp=False)  # fmt: skip
    assert "nsp_logits" not in out and "nsp_loss" not in out and calls == []
    out["loss"].backward()
    assert model.pooler.weight.grad is None and model.nsp.weight.grad is None
    assert torch.equal(out["loss"], out["mlm_loss"])
    model(ids, next_sentence_label=torch.tensor([-100]))  # the default still runs it
    assert calls == ["pooler"]


def test_unpacked_rows_have_no_segments():
    schema = shard_schema(100, 16)
    rb = pa.RecordBatch.from_pylist(
        [
            {
                "input_ids": [CLS, 5, SEP],
                "a_len": 3,
                "masked_positions": [1],
                "masked_labels": [5],
                "next_sentence_label": -100,
            }
        ],  # fmt: skip
        schema=schema,
    )
    rows = rows_from_record_batch(rb, 16, 8)
    assert rows.seg is None and "doc_ids" not in collate(rows)
    assert np.array_equal(collate(rows)["attention_mask"][0, :4].numpy(), [True, True, True, False])
