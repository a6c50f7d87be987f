"""The paper's judge: Qwen2-VL-2B-Instruct answering yes/no questions about an image.

The protocol (the paper's, and its authors' scorer): one image and one question per conversation,
the model's chat template with the generation prompt, greedy decoding of at most 5 new tokens
with the model's own generation config, and "yes" iff the decoded answer, stripped and lower-cased,
starts with "yes". The image is read as RGB, resized with PIL to the nearest multiple of 28 per
side (as ``qwen_vl_utils.fetch_image``, which the authors' scorer calls, does with its default
bounds), then processed by the Qwen2-VL processor with ``min_pixels=256*28*28`` and
``max_pixels=1280*28*28``. On a GPU the model runs in bfloat16 under bfloat16 autocast, on the CPU
in float32, as the authors' scorer does.

``questions_per_call=1`` (the default) runs exactly that loop: one processor call and one
``generate`` per question. Larger values answer the questions about one image (up to that many) in
one ``generate`` call, which is what makes judging 30,000 questions affordable; they are an option
until their answers are shown equal to the loop's on the real judge. The ten conversations about
an image share their first ~350 tokens (system turn, user turn, the image's tokens): that prefix
is run once, with the image preprocessed and encoded once, and its key/value cache is copied to
the ten rows, which then run only their own question.

The tests check that both paths give the same answers on a random-weight tiny Qwen2-VL (float32,
CPU); ``benchmarks/judge_throughput.py`` asserts it on any device and architecture, but the check
that matters, the real 2B layout in bfloat16 on a GPU with the real chat template, has not been run.
In bfloat16 a near-tie between two tokens could round differently in a different batch shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from dvdlib.scoring.judges.base import Question

PAPER_JUDGE = "Qwen/Qwen2-VL-2B-Instruct"
MIN_PIXELS = 256 * 28 * 28
MAX_PIXELS = 1280 * 28 * 28
MAX_NEW_TOKENS = 5
# qwen_vl_utils.fetch_image's own bounds for its PIL resize (the authors' scorer passes none).
_FETCH_FACTOR = 28
_FETCH_MIN_PIXELS = 4 * 28 * 28
_FETCH_MAX_PIXELS = 16384 * 28 * 28


class JudgeNotFoundError(FileNotFoundError):
    """Judge weights that are neither a local folder nor in the Hugging Face cache."""


def is_yes(answer: str) -> bool:
    """The paper's rule: an answer is "yes" iff its stripped, lower-cased text starts with "yes"."""
    return answer.strip().lower().startswith("yes")


def fetch_resize(image: Image.Image) -> Image.Image:
    """Resize like ``qwen_vl_utils.fetch_image``: PIL bicubic, each side a multiple of 28."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    height, width = smart_resize(image.height, image.width, factor=_FETCH_FACTOR,
                                 min_pixels=_FETCH_MIN_PIXELS, max_pixels=_FETCH_MAX_PIXELS)
    if (height, width) == (image.height, image.width):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


class QwenVLJudge:
    """A Qwen2-VL model and processor answering :class:`~dvdlib.scoring.judges.base.Question` s.

    ``questions_per_call``: how many questions share one ``generate`` call (1, the default: the
    paper's loop).
    """

    def __init__(self, model, processor, name: str = "qwen2-vl", questions_per_call: int = 1):
        if not isinstance(questions_per_call, int) or questions_per_call < 1:
            raise ValueError(f"questions_per_call must be a positive integer, got {questions_per_call!r}")
        self.model = model.eval()
        self.processor = processor
        self.name = name
        self.questions_per_call = questions_per_call

    @classmethod
    def from_pretrained(cls, source: str = PAPER_JUDGE, device: str | None = None,
                        dtype: str = "auto", questions_per_call: int = 1) -> "QwenVLJudge":
        """Load from a local folder or the Hugging Face cache, never from the network.

        ``dtype="auto"``: bfloat16 on a GPU, float32 on the CPU (as the authors' scorer).
        """
        from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "auto":
            dtype = "bfloat16" if torch.device(device).type == "cuda" else "float32"
        local = Path(source).is_dir()
        if Path(source).exists() and not local:
            raise JudgeNotFoundError(f"judge weights {source!r} is a file; give the model folder")
        try:
            model = Qwen2VLForConditionalGeneration.from_pretrained(
                source, dtype=getattr(torch, dtype), local_files_only=True)
            processor = AutoProcessor.from_pretrained(
                source, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, local_files_only=True)
        except OSError as err:
            where = "the folder" if local else "the Hugging Face cache"
            repo = PAPER_JUDGE if local or source.count("/") != 1 else source
            raise JudgeNotFoundError(
                f"judge {source!r} cannot be loaded from {where} ({str(err).splitlines()[0].rstrip('.')}). "
                f"On a machine with network run `huggingface-cli download {repo}` (then copy the "
                f"cache here) or `huggingface-cli download {repo} --local-dir DIR` and pass DIR"
            ) from None
        return cls(model.to(device), processor, name=f"qwen2-vl:{source}",
                   questions_per_call=questions_per_call)

    # -- the Judge protocol --------------------------------------------------------------------

    def answer(self, items: Sequence[tuple[Image.Image, Sequence[Question]]]) -> list[list[bool]]:
        return [[is_yes(text) for text in texts] for texts in self.answer_texts(items)]

    def answer_texts(self, items: Sequence[tuple[Image.Image, Sequence[Question]]]) -> list[list[str]]:
        """The decoded answers (special tokens dropped), one list per (image, questions) item."""
        images = [fetch_resize(image.convert("RGB")) for image, _ in items]
        if self.questions_per_call == 1:
            return [[self._answer_one(image, q.text) for q in questions]
                    for image, (_, questions) in zip(images, items)]
        out = []
        for image, (_, questions) in zip(images, items):
            texts = [q.text for q in questions]
            out.append([answer for start in range(0, len(texts), self.questions_per_call)
                        for answer in self._answer_image(image, texts[start:start + self.questions_per_call])])
        return out

    # -- internals -----------------------------------------------------------------------------

    def _conversation(self, question: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _autocast(self):
        # The authors' scorer runs the model under CUDA bfloat16 autocast (a no-op on the CPU).
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.model.device.type == "cuda")

    def _generate(self, **inputs) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            return self.model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)

    def _decode(self, output: torch.Tensor, prompt_length: int) -> list[str]:
        return self.processor.batch_decode(output[:, prompt_length:], skip_special_tokens=True)

    def _answer_one(self, image: Image.Image, question: str) -> str:
        """The paper's protocol for one question: one processor call, one generate call."""
        inputs = self.processor(text=[self._conversation(question)], images=[image], padding=True,
                                return_tensors="pt").to(self.model.device)
        return self._decode(self._generate(**inputs), inputs["input_ids"].shape[1])[0]

    def _answer_image(self, image: Image.Image, questions: list[str]) -> list[str]:
        """All ``questions`` about one image in one generate call, on a shared, cached prefix.

        Every conversation starts with the same tokens (system turn, user turn, the image); they
        are run once, with the image preprocessed and encoded once, and their key/value cache is
        copied to each question's row. The rows differ only after the prefix; a row shorter than
        the longest is padded between prefix and question (masked out), so every row's tokens keep
        the positions they have when asked alone.
        """
        device = self.model.device
        tokenizer = self.processor.tokenizer
        vision = self.processor.image_processor(images=[image], return_tensors="pt")
        # The processor's own expansion of the image placeholder into one token per patch group.
        placeholder = self.processor.replace_image_token(vision, 0)
        rows = tokenizer([self._conversation(q).replace(self.processor.image_token, placeholder, 1)
                          for q in questions])["input_ids"]
        shared = _common_prefix_length(rows, limit=min(len(row) for row in rows) - 1)  # >= 1 token left
        image_token = self.processor.image_token_id
        if any(image_token in row[shared:] for row in rows):
            raise ValueError("the chat template puts question text before the image; the batched judge "
                             "needs the image first (use questions_per_call=1)")
        prefix = torch.tensor([rows[0][:shared]])
        with torch.inference_mode(), self._autocast():
            cache = self.model(
                input_ids=prefix.to(device), attention_mask=torch.ones_like(prefix).to(device),
                mm_token_type_ids=torch.tensor(self.processor.create_mm_token_type_ids(prefix)).to(device),
                pixel_values=vision["pixel_values"].to(device, self.model.dtype),
                image_grid_thw=vision["image_grid_thw"].to(device), use_cache=True,
                logits_to_keep=1,  # only the cache is wanted, not logits over the whole vocabulary
            ).cache  # Qwen2-VL also keeps the prefix's rotary-position offset for what follows
        cache.batch_repeat_interleave(len(rows))
        suffixes = [len(row) - shared for row in rows]
        gaps = [max(suffixes) - n for n in suffixes]
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([row[:shared] + [pad] * gap + row[shared:]
                                  for row, gap in zip(rows, gaps)])  # [question, token]
        attention_mask = torch.tensor([[1] * shared + [0] * gap + [1] * n for n, gap in zip(suffixes, gaps)])
        output = self._generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                cache=cache)
        return self._decode(output, input_ids.shape[1])


def _common_prefix_length(rows: list[list[int]], limit: int) -> int:
    """How many leading tokens all ``rows`` share (at most ``limit``)."""
    for position in range(limit):
        if any(row[position] != rows[0][position] for row in rows):
            return position
    return limit


# --------------------------------------------------------------------------------------------
# Random-weight Qwen2-VL models, for tests and benchmarks (no download)

# A Qwen2-VL-style chat template (our own): a default system turn, <|im_start|>role ... <|im_end|>
# turns, and <|vision_start|><|image_pad|><|vision_end|> where an image goes.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
ARCHITECTURES = ("tiny", "qwen2-vl-2b")


def bpe_tokenizer():
    """CLIP's BPE vocabulary (shipped with open_clip, so no download) with Qwen2-VL's special tokens.

    English text comes out in about as many tokens as with Qwen2-VL's own tokenizer, so prompt
    lengths, and what they cost, resemble the real judge's.
    """
    from tokenizers import AddedToken, Tokenizer, decoders
    from transformers import PreTrainedTokenizerFast

    from dvdlib.prompts.tokenizer import clip_tokenizer

    backend = Tokenizer.from_str(clip_tokenizer().backend_tokenizer.to_str())
    backend.post_processor = None  # no start/end tokens: the chat template writes every marker
    backend.decoder = decoders.BPEDecoder(suffix="</w>")
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")


def _config(architecture: str, tokenizer, initializer_range: float):
    from transformers import Qwen2VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    if architecture == "tiny":
        text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=len(tokenizer),
                    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]})
        vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2)
    elif architecture == "qwen2-vl-2b":  # Qwen2-VL-2B-Instruct's published layout
        text = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                    num_key_value_heads=2, vocab_size=151936, rms_norm_eps=1e-6, tie_word_embeddings=True,
                    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]})
        vision = dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4)
    else:
        raise ValueError(f"unknown architecture {architecture!r}; accepted: {', '.join(ARCHITECTURES)}")
    text.update(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"], initializer_range=initializer_range)
    vision.update(patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  initializer_range=initializer_range)
    return Qwen2VLConfig(
        text_config=text, vision_config=vision, initializer_range=initializer_range,
        tie_word_embeddings=text.pop("tie_word_embeddings", False),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )


def random_qwen2vl(architecture: str = "tiny", seed: int = 0, device: str = "cpu",
                   dtype: torch.dtype = torch.float32, initializer_range: float = 0.5):
    """A random-weight Qwen2-VL model and a processor built offline: ``(model, processor)``.

    ``tiny`` (3.3 M parameters, nearly all of them the embedding and output tables of the 49 k
    token vocabulary) keeps every code path of the real model for CPU tests;
    ``qwen2-vl-2b`` has the real 2B layout (2.2 B parameters; build it on a GPU). The processor
    has the real image processor (with the paper's pixel bounds), :func:`bpe_tokenizer` and our
    chat template. A large ``initializer_range`` makes the answers depend visibly on image and
    question, so tests can tell answers apart.
    """
    from transformers import (GenerationConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLProcessor)
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tokenizer = bpe_tokenizer()
    config = _config(architecture, tokenizer, initializer_range)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration._from_config(config, dtype=dtype)
    model.generation_config = GenerationConfig(
        eos_token_id=[config.text_config.eos_token_id, config.text_config.pad_token_id],
        pad_token_id=config.text_config.pad_token_id, do_sample=False)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    return model.eval(), processor
