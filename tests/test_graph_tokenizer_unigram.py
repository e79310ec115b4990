"""In-graph SentencePiece Unigram (XLM-R, ALBERT) against the Hugging Face fast tokenizers.

Real SentencePiece models are trained here on the shared data (``nmt_nfkc`` and the
lowercasing ``nmt_nfkc_cf`` rules) and converted by ``transformers`` as it converts a
checkpoint's ``*.model``, so each ``tokenizer.json`` carries a real ``Precompiled``
charsmap. Each is checked as transformers 5 writes it (``WhitespaceSplit`` + ``Metaspace``)
and as Hub checkpoints ship it (``Replace(" {2,}", " ")`` after the charsmap, ``Metaspace``
alone); the tiny checkpoints' tokenizers have no charsmap.
"""

from __future__ import annotations

import json
import random

import pytest
import tensorflow as tf
from conftest import shared_texts, tokenize_with_tensorflow_only
from tiny_checkpoints import make_tokenizer

from tfft.data.graph_tokenizers.unigram import Unigram
from tfft.errors import TfftError

#: Texts per shared corpus (four corpora) in the parity checks.
PER_CORPUS = 1300

#: Corners of normalization, splitting and the Viterbi search (none starts with a control
#: character the charsmap removes: Rust then shifts later offsets by one character).
EDGE_CASES = [
    "", " ", "   ", "hello", " hello", "hello ", "  lead  and  trail  ", "a \u00a0 b\u3000c\u2009d",
    "Café naïve résumé Ångström Ünïcode", "e\u0301 A\u0301 e\u0301\u0323 O\u0308\u0304", "ﬁ ﬂ ½ ① ™ ㎏ Ⅻ",
    "İstanbul ΣΊΣΥΦΟΣ straße ǅ", "北京欢迎你 hello 東京 日本語のテキスト", "한국어 \u1100\u1161\u11a8 text",
    "हिन्दी क्षत्रिय", "ภาษาไทย ำ", "emoji 😀👍🏽 👨\u200d👩\u200d👧 🇫🇷 ❤\ufe0f ok", "مرحبا \u0627\u0653",
    "Привет, мир!", "Γειά σου Κόσμε", "mid\x01\x02ctrl and\x7fdel", "tab\tnew\nline\r\nend\r\n",
    "zero\u200bwidth\u200djoin\u200cnon", "soft\u00adhyphen", "▁meta ▁▁ x▁y ▁", "\ufffdreplacement",
    "``quoted'' and ```triple''' ''", "don't stop--ever... $5 <tag> a^b | ~x~", "x" * 300, "é" * 101,
    "00000 000 0000000 aaaa abab", "PLN 94 000 in 2008", "\u0301alone \u0301", "<b>bold</b> [x]",
]


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """About 5,200 shared-data texts (SST-2, STS-B, CoNLL-2003, SQuAD), then the edge cases."""
    corpora = shared_texts()
    return [text for corpus in corpora.values()
            for text in random.Random(0).sample(corpus, PER_CORPUS)] + EDGE_CASES


def _train(folder, texts: list[str], rule: str, albert: bool):
    """A SentencePiece Unigram model trained on ``texts``, loaded as transformers converts it."""
    import sentencepiece
    import transformers

    folder.mkdir()
    # ALBERT's spiece.model has <pad> <unk> [CLS] [SEP] [MASK] first, XLM-R's <unk> <s> </s>.
    specials = (dict(pad_id=0, unk_id=1, bos_id=2, eos_id=3, bos_piece="[CLS]", eos_piece="[SEP]",
                     control_symbols=["[MASK]"]) if albert else {})
    name = "spiece.model" if albert else "sentencepiece.bpe.model"
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=str(folder / "trained"), model_type="unigram",
        vocab_size=3000, normalization_rule_name=rule, minloglevel=2, num_threads=2, **specials)
    (folder / "trained.model").rename(folder / name)
    cls = transformers.AlbertTokenizerFast if albert else transformers.XLMRobertaTokenizerFast
    return cls.from_pretrained(str(folder)).backend_tokenizer


def _hub_style(tokenizer):
    """The same tokenizer as Hub XLM-R/ALBERT checkpoints' tokenizer.json has it."""
    from tokenizers import Tokenizer

    spec = json.loads(tokenizer.to_str())
    normalizer = spec["normalizer"]
    steps = normalizer["normalizers"] if normalizer["type"] == "Sequence" else [normalizer]
    collapse = {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}
    spec["normalizer"] = {"type": "Sequence", "normalizers": [*steps, collapse]}
    spec["pre_tokenizer"] = spec["pre_tokenizer"]["pretokenizers"][-1]
    return Tokenizer.from_str(json.dumps(spec))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, texts) -> dict:
    """Fast tokenizers (``tokenizers.Tokenizer``) by name: trained ones, both layouts, and tiny ones."""
    training = texts[:-len(EDGE_CASES):2]
    tokenizers = {}
    for rule in ("nmt_nfkc", "nmt_nfkc_cf"):
        for family in ("xlm-roberta", "albert"):
            folder = tmp_path_factory.mktemp(f"{family}_{rule}")
            tokenizer = _train(folder / "checkpoint", training, rule, albert=family == "albert")
            tokenizers[f"{family} {rule}"] = tokenizer
            tokenizers[f"{family} {rule} hub"] = _hub_style(tokenizer)  # Checked for two of them.
    for family in ("xlm-roberta", "albert"):
        tokenizer = make_tokenizer(family, tmp_path_factory.mktemp(family))
        tokenizers[f"tiny {family}"] = tokenizer.backend_tokenizer
    return tokenizers


def tokenize(tokenizer, texts: list[str], eager: bool = False) -> tuple[list, list, list]:
    """Ids and byte offsets from a graph tokenizer (in a tf.function unless ``eager``), as lists."""
    function = tokenizer.tokenize if eager else tf.function(
        tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    return tuple(values.to_list() for values in function(tf.constant(texts, tf.string)))


def count_mismatches(hf, texts: list[str], eager: bool = False) -> tuple[int, int]:
    """Texts whose ids differ, and ASCII texts whose offsets differ, from the fast tokenizer's.

    Byte offsets of ASCII texts are the character offsets Hugging Face gives.
    """
    ids, starts, ends = tokenize(Unigram(json.loads(hf.to_str())), texts, eager)
    id_mismatches = offset_mismatches = 0
    for index, encoding in enumerate(hf.encode_batch(texts, add_special_tokens=False)):
        id_mismatches += encoding.ids != ids[index]
        if texts[index].isascii():
            offset_mismatches += list(encoding.offsets) != list(zip(starts[index], ends[index], strict=True))
    return id_mismatches, offset_mismatches


@pytest.mark.parametrize("name", [
    *(f"{family} {rule}" for rule in ("nmt_nfkc", "nmt_nfkc_cf") for family in ("xlm-roberta", "albert")),
    "xlm-roberta nmt_nfkc hub", "albert nmt_nfkc_cf hub", "tiny xlm-roberta", "tiny albert"])
def test_ids_and_offsets_match_the_fast_tokenizer(trained, texts, name):
    assert len(texts) > 5000
    assert count_mismatches(trained[name], texts) == (0, 0)


@pytest.mark.parametrize(("scheme", "whitespace_split", "split"),
                         [("never", False, False), ("first", True, True)])
def test_other_metaspace_settings(trained, texts, scheme, whitespace_split, split):
    from tokenizers import Tokenizer

    spec = json.loads(trained["tiny xlm-roberta"].to_str())
    metaspace = {**spec["pre_tokenizer"]["pretokenizers"][-1], "prepend_scheme": scheme, "split": split}
    spec["pre_tokenizer"] = ({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace]}
                             if whitespace_split else metaspace)
    assert count_mismatches(Tokenizer.from_str(json.dumps(spec)), texts[::10]) == (0, 0)


def test_saved_model_needs_only_core_tensorflow_ops_after_a_move(trained, tmp_path):
    tokenizer = Unigram(json.loads(trained["albert nmt_nfkc_cf hub"].to_str()))
    sample = EDGE_CASES + ["The film's ``charm'' is ÉNORME ... really.", "two  spaces   three    four"]
    unregistered, outputs = tokenize_with_tensorflow_only(tokenizer, sample, tmp_path)
    assert not unregistered, f"ops TensorFlow does not register: {unregistered}"
    assert outputs == list(tokenize(tokenizer, sample))


def test_runs_eagerly_too(trained):
    assert count_mismatches(trained["albert nmt_nfkc_cf hub"], EDGE_CASES, eager=True) == (0, 0)
    assert tokenize(Unigram(json.loads(trained["tiny albert"].to_str())), [], eager=True) == ([], [], [])


def test_handles_only_unigram_specs(trained):
    assert Unigram.handles(json.loads(trained["tiny albert"].to_str()))
    assert not Unigram.handles({"model": {"type": "BPE"}})


@pytest.mark.parametrize(("change", "message"), [
    ({"normalizer": {"type": "NFKC"}}, "does not support the NFKC normalizer"),
    ({"normalizer": {"type": "Replace", "pattern": {"Regex": "^ +"}, "content": ""}},
     "cannot reproduce Replace"),
    ({"pre_tokenizer": {"type": "ByteLevel"}}, r"supports a Metaspace pre-tokenizer .* not \['ByteLevel'\]"),
    ({"model": {"byte_fallback": True}}, "does not support byte_fallback"),
    ({"model": {"unk_id": None}}, "needs a Unigram model with an unk_id"),
])
def test_unsupported_variants_raise_one_clear_line(trained, change, message):
    spec = json.loads(trained["tiny xlm-roberta"].to_str())
    for key, value in change.items():
        spec[key] = {**spec[key], **value} if key == "model" else value
    with pytest.raises(TfftError, match=message) as error:
        Unigram(spec)
    assert "\n" not in str(error.value) and "serve_token_ids" in str(error.value)
