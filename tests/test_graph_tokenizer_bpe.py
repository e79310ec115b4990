"""In-graph byte-level BPE (ByteLevelBpe) against the Hugging Face tokenizers it reproduces."""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import shared_texts

from tfft.data.graph_tokenizers.byte_level_bpe import ByteLevelBpe
from tfft.errors import TfftError

#: Texts that exercise GPT-2's split pattern, byte symbols and offsets.
EDGE_CASES = [
    "", " ", "  ", "\t", "a", " lead", "trail ", "  two  spaces  between  ", "   three", "end   ",
    "don't we'll they're I've he'd she's I'm 'S 'LL ''s", "  's  'll '", "x  'd", "tab\tthen\t\ttabs\t",
    "new\nline\n\n\nparagraph\r\n", "\n\tmixed \t\n x", "Café naïve résumé Ångström",
    "İstanbul ΣΊΣΥΦΟΣ straße", "北京欢迎你 hello 東京", "日本語のテキスト", "emoji 😀👍🏽 ok 🇫🇷",
    "Привет, мир!", "مرحبا بالعالم", "Ελληνικά", "e\u0301 combining \u0301alone",
    "nbsp\u00a0here \u00a0 and\u00a0\u00a0two",
    "zero\u200bwidth \u200b x", "ideographic\u3000space\u3000\u3000x", "line\u2028sep \u2029 para",
    "nel\u0085x \u0085", "bom\ufeffx", "ctrl\x00nul \x00 \x01\x02\x7f", "\x00", "v\x0bt\x0cf",
    "1234567 89,000.50 3.14e-10 ½ Ⅻ", "$5 <tag> a^b | ~x~ `q` @user #tag http://example.com/a?b=c&d=e",
    "x" * 300, "é" * 101, "supercalifragilisticexpialidocious" * 4, "don't stop--ever...",
    "\ufffdreplacement", "ha" * 60, "!" * 33 + "?" * 7, "-" * 80, " " * 41 + "x", "aaaa aaaaa " * 9,
    "\n" * 12,
]


def sample(corpus: list[str], count: int, seed: int = 0) -> list[str]:
    return random.Random(seed).sample(corpus, min(count, len(corpus)))


@pytest.fixture(scope="session")
def all_texts() -> dict[str, list[str]]:
    return shared_texts()


@pytest.fixture(scope="session")
def corpora(all_texts) -> dict[str, list[str]]:
    """About 6,000 real texts by corpus (SST-2, STS-B, CoNLL-2003, SQuAD), plus the edge cases."""
    counts = {"SST-2": 2000, "STS-B": 1500, "CoNLL-2003": 1500, "SQuAD": 1200}
    real = {name: sample(all_texts[name], count) for name, count in counts.items()}
    return {**real, "edge cases": EDGE_CASES}


@pytest.fixture(scope="session")
def trained_spec(all_texts) -> dict:
    """The model of a 3,000-token byte-level BPE trained on other texts of the same corpora."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    texts = [text for corpus in all_texts.values() for text in sample(corpus, 3000, seed=1)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=3000, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    return json.loads(bpe.to_str())["model"]


def roberta_tokenizer(model: dict, add_prefix_space: bool):
    """``RobertaTokenizerFast`` over a trained BPE model, as tests/tiny_checkpoints.py builds one."""
    import transformers

    vocab = dict(model["vocab"])
    vocab["<mask>"] = len(vocab)
    merges = [tuple(merge) for merge in model["merges"]]
    return transformers.RobertaTokenizerFast(vocab=vocab, merges=merges, add_prefix_space=add_prefix_space)


def byte_offsets(text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Hugging Face's character offsets as UTF-8 byte offsets."""
    ends = [0]
    for char in text:
        ends.append(ends[-1] + len(char.encode("utf-8")))
    return [(ends[start], ends[end]) for start, end in offsets]


def differences(graph: ByteLevelBpe, hf_ids: list, hf_offsets: list, texts: list[str]) -> tuple[int, int]:
    """Counts of texts whose ids differ, and of texts with the same ids but other byte offsets."""
    ids, starts, ends = (tensor.to_list() for tensor in graph.tokenize(tf.constant(texts)))
    other_ids = other_offsets = 0
    for row, text in enumerate(texts):
        if ids[row] != hf_ids[row]:
            other_ids += 1
        elif list(zip(starts[row], ends[row], strict=True)) != byte_offsets(text, hf_offsets[row]):
            other_offsets += 1
    return other_ids, other_offsets


def hf_differences(graph: ByteLevelBpe, hf, texts: list[str]) -> tuple[int, int]:
    """:func:`differences` from a ``transformers`` fast tokenizer, without special tokens."""
    encoded = hf(texts, add_special_tokens=False, return_offsets_mapping=True)
    return differences(graph, encoded["input_ids"], encoded["offset_mapping"], texts)


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_ids_and_offsets_match_roberta_fast_tokenizer(trained_spec, corpora, add_prefix_space):
    hf = roberta_tokenizer(trained_spec, add_prefix_space)
    spec = json.loads(hf.backend_tokenizer.to_str())
    assert ByteLevelBpe.handles(spec)
    graph = ByteLevelBpe(spec)
    counts = {name: hf_differences(graph, hf, texts) for name, texts in corpora.items()}
    print(f"add_prefix_space={add_prefix_space} (texts, other ids, other offsets):",
          {name: (len(corpora[name]), *count) for name, count in counts.items()})
    assert counts == dict.fromkeys(counts, (0, 0))


@pytest.mark.parametrize("variant", [
    {"use_regex": False}, {"trim_offsets": False}, {"add_prefix_space": True, "trim_offsets": False},
    {"add_prefix_space": True, "use_regex": False}, {"post_processor": None}, {"ignore_merges": True},
    {"sequence": True},
])
def test_pre_tokenizer_model_and_post_processor_options(trained_spec, corpora, variant):
    """Other ByteLevel/BPE settings, against ``tokenizers`` itself on a smaller sample."""
    from tokenizers import Tokenizer

    spec = json.loads(roberta_tokenizer(trained_spec, False).backend_tokenizer.to_str())
    for key in ("use_regex", "add_prefix_space", "trim_offsets"):
        if key in variant:
            spec["pre_tokenizer"][key] = variant[key]
            spec["post_processor"][key] = variant[key]
    if "post_processor" in variant:
        spec["post_processor"] = None
    if "ignore_merges" in variant:
        spec["model"]["ignore_merges"] = True
    if "sequence" in variant:
        spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [spec["pre_tokenizer"]]}
        spec["normalizer"] = {"type": "Sequence", "normalizers": []}
        spec["model"]["merges"] = [" ".join(merge) for merge in spec["model"]["merges"]]  # The older format.
    texts = [text for corpus in corpora.values() for text in corpus[:150]] + EDGE_CASES
    encoded = Tokenizer.from_str(json.dumps(spec)).encode_batch(texts, add_special_tokens=False)
    ids, offsets = [e.ids for e in encoded], [e.offsets for e in encoded]
    assert differences(ByteLevelBpe(spec), ids, offsets, texts) == (0, 0)


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_segments_after_added_tokens(trained_spec, corpora, add_prefix_space):
    """Texts cut at an added token ("</s>"): the part after it is not ``at_start``."""
    hf = roberta_tokenizer(trained_spec, add_prefix_space)
    graph = ByteLevelBpe(json.loads(hf.backend_tokenizer.to_str()))
    heads, tails = corpora["STS-B"][:200:2], [" " + text for text in corpora["STS-B"][1:200:2]]
    tails[:4] = ["x", "", "  two", "\tb"]
    texts = [f"{head}</s>{tail}" for head, tail in zip(heads, tails, strict=True)]
    encoded = hf(texts, add_special_tokens=False, return_offsets_mapping=True)
    tokenized = graph.tokenize(tf.constant(tails), at_start=tf.zeros([len(tails)], tf.bool))
    ids, starts, ends = (tensor.to_list() for tensor in tokenized)
    for row, (text, head) in enumerate(zip(texts, heads, strict=True)):
        hf_ids, count, shift = encoded["input_ids"][row], len(ids[row]), len(head.encode()) + len("</s>")
        assert hf_ids[len(hf_ids) - count:] == ids[row]
        tail_offsets = byte_offsets(text, encoded["offset_mapping"][row])[len(hf_ids) - count:]
        shifted = [(start + shift, end + shift) for start, end in zip(starts[row], ends[row], strict=True)]
        assert tail_offsets == shifted


def test_tiny_checkpoint_tokenizer(tmp_path, corpora):
    """The byte-level BPE of the tiny RoBERTa checkpoints the other tests use."""
    from tiny_checkpoints import make_tokenizer

    hf = make_tokenizer("roberta", tmp_path)
    graph = ByteLevelBpe(json.loads(hf.backend_tokenizer.to_str()), tmp_path)
    assert hf_differences(graph, hf, corpora["SST-2"][:300] + EDGE_CASES) == (0, 0)


def test_handles_only_byte_level_bpe(trained_spec):
    spec = json.loads(roberta_tokenizer(trained_spec, False).backend_tokenizer.to_str())
    assert ByteLevelBpe.handles(spec)
    assert not ByteLevelBpe.handles({**spec, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}})
    assert not ByteLevelBpe.handles({**spec, "model": {"type": "WordPiece", "vocab": {}}})
    assert not ByteLevelBpe.handles({**spec, "pre_tokenizer": None})


@pytest.mark.parametrize("change, message", [
    (lambda spec: spec.update(normalizer={"type": "NFC"}), "NFC normalizer"),
    (lambda spec: spec.update(normalizer={"type": "Sequence", "normalizers": [{"type": "Lowercase"}]}),
     "Lowercase"),
    (lambda spec: spec.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Isolated", "invert": False},
        spec["pre_tokenizer"]]}), "Split"),
    (lambda spec: spec["model"].update(dropout=0.1), "dropout"),
    (lambda spec: spec["model"].update(continuing_subword_prefix="##"), "continuing_subword_prefix"),
    (lambda spec: spec["model"]["vocab"].pop("Ā"), "byte symbols"),
    (lambda spec: spec["model"]["merges"].append(["Ġ", "zzzz"]), "missing from the vocabulary"),
])
def test_unsupported_variants_raise_one_line(trained_spec, change, message):
    spec = copy.deepcopy(json.loads(roberta_tokenizer(trained_spec, False).backend_tokenizer.to_str()))
    change(spec)
    with pytest.raises(TfftError, match=message) as raised:
        ByteLevelBpe(spec)
    assert "\n" not in str(raised.value)


_LOAD_AND_TOKENIZE = """
import json, sys
import tensorflow as tf  # ByteLevelBpe uses core ops only: not even tensorflow_text.
module = tf.saved_model.load(sys.argv[1])
ids, starts, ends = module.tokenize(tf.constant(json.loads(sys.stdin.read())))
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("tfft", "tokenizers", "transformers"))
print(json.dumps([ids.to_list(), starts.to_list(), ends.to_list(), loaded]))
"""


def test_saved_model_runs_moved_without_tfft(trained_spec, tmp_path):
    graph = ByteLevelBpe(json.loads(roberta_tokenizer(trained_spec, True).backend_tokenizer.to_str()))
    holder = tf.Module()
    holder.graph = graph
    holder.tokenize = tf.function(graph.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(holder, str(tmp_path / "saved"))
    moved = shutil.move(str(tmp_path / "saved"), str(tmp_path / "moved"))
    texts = ["Hello  world!", "", "naïve café 日本 \x00x", "it's   a\tgood  movie "]
    result = subprocess.run([sys.executable, "-c", _LOAD_AND_TOKENIZE, moved], input=json.dumps(texts),
                            capture_output=True, text=True, check=True)
    *restored, loaded = json.loads(result.stdout.splitlines()[-1])
    assert restored == [tensor.to_list() for tensor in graph.tokenize(tf.constant(texts))]
    assert loaded == []


def test_merge_order_follows_the_rust_queue():
    """Merges of a token made twice: "abc" from a+bc, then abc+ab, then ab+c makes "abc" again.

    Merging every occurrence of ab+c in one round, as GPT-2's Python code does, would give
    "abc abc"; Rust's queue merges the first, then abc+ab (ranked before ab+c) takes its neighbour.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {symbol: index for index, symbol in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    merges = [("a", "b"), ("b", "c"), ("a", "bc"), ("abc", "ab"), ("ab", "c")]
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    reference = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    texts = ["abcabc", "abcabcabc", "cabcabc", "aaaaaaa", "abab abcc"]
    encodings = reference.encode_batch(texts, add_special_tokens=False)
    assert encodings[0].tokens == ["abcab", "c"]
    expected = [encoding.ids for encoding in encodings]
    assert ByteLevelBpe(json.loads(reference.to_str())).tokenize(tf.constant(texts))[0].to_list() == expected


def test_empty_batches_and_invalid_utf8(trained_spec):
    graph = ByteLevelBpe(json.loads(roberta_tokenizer(trained_spec, False).backend_tokenizer.to_str()))
    assert [tensor.to_list() for tensor in graph.tokenize(tf.constant([], tf.string))] == [[], [], []]
    assert graph.tokenize(tf.constant(["", ""]))[0].to_list() == [[], []]
    texts = [b"\xff\xfe", b"a\xffb c", b"\x80abc", b"\xc3", b"ok \xe6\x97"]  # No Python str encodes to these.
    ids, starts, ends = (tensor.to_list() for tensor in graph.tokenize(tf.constant(texts)))
    for text, row_ids, row_starts, row_ends in zip(texts, ids, starts, ends, strict=True):
        assert row_ids
        assert all(0 <= start <= end <= len(text) for start, end in zip(row_starts, row_ends, strict=True))
