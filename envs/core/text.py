"""Text classification data: the SST-2 and AG News TSV files, and the subword tokenizer that turns any text into ids.

Why a module of its own: text arrives as strings, the trainer wants fixed-length integer tensors. This module
reads the offline TSV copies (one tab per line, no CSV quoting), trains a BPE tokenizer (Hugging Face
``tokenizers``) on the training split only, and pads or truncates every text to ``seq_len`` ids, once: the ids
and the tokenizer are cached, keyed by the texts, labels and options, so later loads skip both steps. Your own
strings (:mod:`envs.core.own_data`) take the same route (:func:`tokenize_splits`). Id 0 is padding, id 1 an
unknown token; models mask the padding.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.core.checks import is_count
from envs.core.files import atomic_write

TEXT_DATASETS = ("sst2", "agnews")
PAD, UNK = "[PAD]", "[UNK]"
DEFAULT_VOCAB_SIZE = 8192
DEFAULT_SEQ_LEN = 64
MIN_VOCAB_SIZE = 2
# the usual places of the offline copies: beside the repository (a checkout next to shared/) and the workstation's
TEXT_DIRS = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "text", Path("/work/shared/data/text"))
_CACHE_VERSION = 1


@dataclass(frozen=True)
class TextSet:
    """Where one registry text set's files are and how its labels read.

    :param train: the training file in the set's folder
    :param test: the evaluation file
    :param header: the files start with a header line
    :param labels: the label strings of the files, in class-id order
    :param class_names: readable class names, in class-id order
    """

    train: str
    test: str
    header: bool
    labels: tuple[str, ...]
    class_names: tuple[str, ...]


TEXT_SETS = {
    "sst2": TextSet("train.tsv", "test.tsv", True, ("0", "1"), ("negative", "positive")),
    "agnews": TextSet("dev.tsv", "test.tsv", False, ("World", "Sports", "Business", "Sci/Tech"),
                      ("World", "Sports", "Business", "Sci/Tech")),
}


@dataclass
class TokenizedSplits:
    """Token ids (int64, ``(N, seq_len)``, 0 = padding) and int64 labels of both splits."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    vocab_size: int  # the tokenizer's: the rows an embedding needs


def check_text_options(vocab_size: object, seq_len: object) -> None:
    """One-line errors for a vocabulary size or sequence length that cannot work."""
    if not (is_count(vocab_size) and vocab_size >= MIN_VOCAB_SIZE):
        raise ValueError(f"vocab_size={vocab_size!r} is invalid; valid: an integer >= {MIN_VOCAB_SIZE} "
                         f"(default {DEFAULT_VOCAB_SIZE})")
    if not (is_count(seq_len) and seq_len >= 1):
        raise ValueError(f"seq_len={seq_len!r} is invalid; valid: an integer >= 1 (default {DEFAULT_SEQ_LEN})")


def text_folder(name: str, root: str | Path | None) -> Path:
    """The folder holding ``name``'s files: ``root/<name>`` or ``root`` itself, else the usual places (:data:`TEXT_DIRS`)."""
    spec = TEXT_SETS[name]
    bases = [Path(root).expanduser()] if root is not None else list(TEXT_DIRS)
    candidates = [c for b in bases for c in (b / name, b)]
    for c in candidates:
        if (c / spec.train).is_file() and (c / spec.test).is_file():
            return c
    raise FileNotFoundError(f"{name}: no '{spec.train}' and '{spec.test}' found in " + ", ".join(str(c) for c in candidates)
                            + f". Point --data-root (root= in the envs' data options and in load_dataset) at the folder "
                            f"holding '{name}/' (the offline copy: /work/shared/data/text, see docs/text.md)")


def read_tsv(path: Path, header: bool, labels: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Texts and int64 class ids of a ``text<TAB>label`` file, split on its single tab (no CSV quoting).

    :raises ValueError: naming the file and line of a line without exactly one tab, an unknown label, or a file
        without data lines
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 1 if header else 0
    ids = {label: i for i, label in enumerate(labels)}
    texts, ys = [], []
    for number, line in enumerate(lines[start:], start=start + 1):
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: {len(parts)} tab-separated column(s); valid: 2 (text<TAB>label)")
        if parts[1] not in ids:
            raise ValueError(f"{path}:{number}: unknown label {parts[1]!r}; valid: {', '.join(labels)}")
        texts.append(parts[0])
        ys.append(ids[parts[1]])
    if not texts:
        raise ValueError(f"{path}:{max(len(lines), 1)}: no data lines; valid: text<TAB>label lines"
                         + (" after a header line" if header else ""))
    return texts, np.asarray(ys, dtype=np.int64)


def load_text(name: str, root: str | Path | None, vocab_size: int, seq_len: int, cache_dir: Path) -> TokenizedSplits:
    """The registry text set ``name`` (:data:`TEXT_SETS`), tokenised (cached in ``cache_dir``)."""
    spec = TEXT_SETS[name]
    folder = text_folder(name, root)
    train_texts, train_y = read_tsv(folder / spec.train, spec.header, spec.labels)
    test_texts, test_y = read_tsv(folder / spec.test, spec.header, spec.labels)
    return tokenize_splits(train_texts, train_y, test_texts, test_y, vocab_size, seq_len, cache_dir, name)


def _train_tokenizer(texts: list[str], vocab_size: int, seq_len: int) -> "tokenizers.Tokenizer":  # noqa: F821
    """A lower-casing BPE tokenizer learnt from ``texts``, padding and truncating to ``seq_len``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, UNK], show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.enable_truncation(seq_len)
    tok.enable_padding(length=seq_len, pad_id=0, pad_token=PAD)
    return tok


def _encode(tok: "tokenizers.Tokenizer", texts: list[str], seq_len: int) -> np.ndarray:  # noqa: F821
    ids = np.asarray([e.ids for e in tok.encode_batch(texts)], dtype=np.int64)
    return ids.reshape(len(texts), seq_len)


def _cache_key(train_texts: list[str], train_y: np.ndarray, test_texts: list[str], test_y: np.ndarray,
               vocab_size: int, seq_len: int) -> str:
    h = hashlib.sha1(f"v{_CACHE_VERSION}|{vocab_size}|{seq_len}|{len(train_texts)}|{len(test_texts)}".encode())
    for part in ("\n".join(train_texts), "\n".join(test_texts)):
        h.update(part.encode("utf-8", "surrogatepass"))
    h.update(np.ascontiguousarray(train_y, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(test_y, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def _read_cache(path: Path, n_train: int, n_test: int, seq_len: int) -> TokenizedSplits | None:
    """The cached ids, or None when the file is missing or does not hold what this key promises
    (a truncated or altered file is rebuilt, never trusted)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            tx, vx, vocab = z["train_x"], z["test_x"], int(z["vocab_size"])
        ok = (tx.dtype == np.int64 and vx.dtype == np.int64 and tx.shape == (n_train, seq_len)
              and vx.shape == (n_test, seq_len) and vocab >= MIN_VOCAB_SIZE
              and all(a.size == 0 or (a.min() >= 0 and a.max() < vocab) for a in (tx, vx)))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        ok = False
    if not ok:
        print(f"text: the token cache {path} is unreadable or inconsistent; rebuilding it", file=sys.stderr, flush=True)
        return None
    return TokenizedSplits(tx, np.empty(0), vx, np.empty(0), vocab)


def tokenize_splits(train_texts: list[str], train_y: np.ndarray, test_texts: list[str], test_y: np.ndarray,
                    vocab_size: int, seq_len: int, cache_dir: Path, label: str = "text") -> TokenizedSplits:
    """Token ids of both splits, from a tokenizer trained on ``train_texts`` only; cached in ``cache_dir``.

    :param train_texts: training texts (the tokenizer learns from these alone)
    :param train_y: their int64 labels
    :param test_texts: evaluation texts
    :param test_y: their labels
    :param vocab_size: the tokenizer's target vocabulary (it includes the two special tokens)
    :param seq_len: ids per text, padded with 0 or truncated
    :param cache_dir: where the ids and the tokenizer are kept, keyed by texts, labels and options
    :param label: a name for the cache file and the message
    """
    check_text_options(vocab_size, seq_len)
    key = _cache_key(train_texts, train_y, test_texts, test_y, vocab_size, seq_len)
    path = Path(cache_dir) / f"text-{label.replace('/', '_').replace(':', '_')}-{key}.npz"
    cached = _read_cache(path, len(train_texts), len(test_texts), seq_len)
    if cached is None:
        tok = _train_tokenizer(train_texts, vocab_size, seq_len)
        tx, vx = _encode(tok, train_texts, seq_len), _encode(tok, test_texts, seq_len)
        vocab = tok.get_vocab_size()
        config = np.asarray(tok.to_str())
        atomic_write(path, lambda f: np.savez(f, train_x=tx, test_x=vx, vocab_size=np.int64(vocab), tokenizer=config))
        cached = TokenizedSplits(tx, np.empty(0), vx, np.empty(0), vocab)
    cached.train_y, cached.test_y = np.asarray(train_y, dtype=np.int64), np.asarray(test_y, dtype=np.int64)
    return cached
