"""In-graph tokenization (GraphTokenizer) against the Hugging Face fast tokenizers it reproduces."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import tensorflow as tf
from conftest import shared_texts, tokenize_with_tensorflow_only
from tiny_checkpoints import FAMILIES, make_tokenizer

from tfft.data.graph_tokenizers import GraphTokenizer
from tfft.data.graph_tokenizers.wordpiece import WordPiece
from tfft.data.tokenization import load_tokenizer

#: Texts that exercise normalization and splitting corners.
EDGE_CASES = [
    "", " ", "  lead  and  trail  ", "Café naïve résumé Ångström", "İstanbul ΣΊΣΥΦΟΣ straße ǅ",
    "北京欢迎你 hello 東京", "a\x00b\u200bc\u00a0d\te\nf\rg\x0bh\x85i", "emoji 😀👍🏽 ok", "Привет, мир!",
    "مرحبا بالعالم", "\u0301alone \u0301 e\u0301", "ﬁ ligature ½ Ⅻ ㎏", "$5 <tag> a^b | ~x~ `q`",
    "x" * 150, "é" * 101, "don't stop--ever...", "[CLS] literal [SEP] tokens [MASK]", "\ufffdreplacement",
    # Greek varia is punctuation once normalized; Hangul syllables lose no accent but become
    # jamo; private use characters go; U+2E45 is punctuation newer than the tokenizers' tables.
    "a\u1fefb", "한국어 x", "\U000f0000x y\ue000z", "a\u2e45b", "中\u0301文 \uf900x",
    "x\u00e9t\u0301b c\u0301\u0301d",
]


def sample(corpus: list[str], count: int, seed: int = 0) -> list[str]:
    """A fixed random subset (the whole corpus if ``count`` is 0)."""
    return corpus if not count else random.Random(seed).sample(corpus, min(count, len(corpus)))


def mismatches(graph: GraphTokenizer, hf, texts: list[str]) -> list[str]:
    """Texts whose in-graph ids differ from the fast tokenizer's (no special tokens)."""
    ours = tf.function(graph.tokenize)(tf.constant(texts))[0].to_list()
    theirs = hf(texts, add_special_tokens=False)["input_ids"]
    return [text for text, a, b in zip(texts, ours, theirs, strict=True) if a != b]


def assert_same_ids(graph, hf, per_corpus: int):
    counts = {name: len(mismatches(graph, hf, sample(texts, per_corpus)))
              for name, texts in {**shared_texts(), "edge cases": EDGE_CASES}.items()}
    assert counts == dict.fromkeys(counts, 0), f"texts with other ids than the fast tokenizer: {counts}"


@pytest.fixture(scope="module")
def minilm_tokenizers(minilm):
    hf = load_tokenizer(minilm)
    return GraphTokenizer(hf), hf


def test_minilm_wordpiece_ids_match_on_shared_data(minilm_tokenizers):
    assert_same_ids(*minilm_tokenizers, per_corpus=2000)


@pytest.mark.slow
def test_minilm_wordpiece_ids_match_on_every_shared_text(minilm_tokenizers):
    assert_same_ids(*minilm_tokenizers, per_corpus=0)


def byte_offsets(text: str, offsets: list) -> list[tuple[int, int]]:
    """Character offsets into ``text`` as UTF-8 byte offsets."""
    positions = np.cumsum([0, *(len(char.encode()) for char in text)]).tolist()
    return [(positions[start], positions[end]) for start, end in offsets]


def test_offsets_point_into_the_original_text(minilm_tokenizers):
    """Byte offsets as the fast tokenizer's character offsets, also where normalization changes lengths."""
    graph, hf = minilm_tokenizers
    texts = sample(shared_texts()["SQuAD"], 300) + EDGE_CASES
    _, starts, ends = graph.tokenize(tf.constant(texts))
    theirs = hf(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ours = [list(zip(s, e, strict=True)) for s, e in zip(starts.to_list(), ends.to_list(), strict=True)]
    assert ours == [byte_offsets(text, row) for text, row in zip(texts, theirs, strict=True)]


@pytest.mark.parametrize("clean_text, handle_chinese_chars, strip_accents, lowercase", [
    (False, False, False, False), (True, True, True, False), (False, True, None, True),
    (True, False, False, True),
])
def test_other_bert_normalizer_settings(minilm, clean_text, handle_chinese_chars, strip_accents, lowercase):
    """Each BertNormalizer switch on its own: ids and offsets as the tokenizers library gives them."""
    from tokenizers import Tokenizer

    spec = json.loads(load_tokenizer(minilm).backend_tokenizer.to_str())
    spec["normalizer"].update(clean_text=clean_text, handle_chinese_chars=handle_chinese_chars,
                              strip_accents=strip_accents, lowercase=lowercase)
    spec.update(added_tokens=[], padding=None, truncation=None)
    reference = Tokenizer.from_str(json.dumps(spec))
    texts = [text for corpus in shared_texts().values() for text in sample(corpus, 100, seed=3)] + EDGE_CASES
    ids, starts, ends = (tensor.to_list() for tensor in WordPiece(spec).tokenize(tf.constant(texts)))
    theirs = reference.encode_batch(texts, add_special_tokens=False)
    assert ids == [encoding.ids for encoding in theirs]
    assert [list(zip(s, e, strict=True)) for s, e in zip(starts, ends, strict=True)] == [
        byte_offsets(text, encoding.offsets) for text, encoding in zip(texts, theirs, strict=True)]


def test_saved_model_needs_only_core_tensorflow_ops_after_a_move(minilm_tokenizers, tmp_path):
    """TF Serving and saved_model_cli register no TensorFlow Text ops: the graph must use none."""
    graph, hf = minilm_tokenizers
    texts = EDGE_CASES + ["the [CLS]cat[SEP] sat", "[MASK][MASK] x\x00[SEP]"]
    unregistered, outputs = tokenize_with_tensorflow_only(graph, texts, tmp_path)
    assert unregistered == []
    assert outputs == [tensor.to_list() for tensor in graph.tokenize(tf.constant(texts))]
    assert outputs[0] == hf(texts, add_special_tokens=False)["input_ids"]


def test_cased_wordpiece_trained_on_shared_data(tmp_path):
    """A cased vocabulary without accent stripping (BertNormalizer lowercase=False)."""
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    texts = [text for corpus in shared_texts().values() for text in sample(corpus, 1500, seed=1)]
    trained = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trained.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    trained.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=3000, show_progress=False,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    trained.train_from_iterator(texts, trainer)
    hf = transformers.BertTokenizerFast(tokenizer_object=trained, do_lower_case=False)
    spec = json.loads(hf.backend_tokenizer.to_str())
    assert WordPiece.handles(spec) and not spec["normalizer"]["lowercase"]
    graph = GraphTokenizer(hf)
    held_out = [text for corpus in shared_texts().values() for text in sample(corpus, 1500, seed=2)]
    assert mismatches(graph, hf, held_out + EDGE_CASES) == []


@pytest.mark.parametrize("max_length", [8, 13, 24, 128])
def test_encode_truncates_and_pairs_like_the_fast_tokenizer(minilm, max_length):
    """Special tokens, longest-first pair truncation, token types and padding; added marker tokens."""
    hf = load_tokenizer(minilm)
    hf.add_tokens(["<e1>", "</e1>"], special_tokens=True)
    graph = GraphTokenizer(hf)
    corpus = shared_texts()["STS-B"]
    first, second = sample(corpus[0::2], 300), sample(corpus[1::2], 300)
    first[:2] = ["the <e1>cat</e1> sat", "a [SEP] b"]
    for pair in (None, second):
        ours = graph.encode(tf.constant(first), None if pair is None else tf.constant(pair), max_length)
        theirs = hf(first, pair, truncation=True, max_length=max_length, padding=True, return_tensors="np")
        for name, value in ours.items():
            np.testing.assert_array_equal(value.numpy(), theirs[name], err_msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_encodes_pairs_like_its_fast_tokenizer(family, tmp_path):
    """The six families' test tokenizers: templates (RoBERTa's double separator), types, padding ids."""
    hf = make_tokenizer(family, tmp_path)
    graph = GraphTokenizer(hf)
    corpus = shared_texts()["STS-B"]
    first, second = sample(corpus[0::2], 200), sample(corpus[1::2], 200)
    for pair in (None, second):
        for max_length in (12, 64):
            ours = graph.encode(tf.constant(first), None if pair is None else tf.constant(pair), max_length)
            theirs = hf(first, pair, truncation=True, max_length=max_length, padding=True,
                        return_token_type_ids=True, return_tensors="np")
            for name, value in ours.items():
                np.testing.assert_array_equal(value.numpy(), theirs[name], err_msg=f"{family} {name}")
