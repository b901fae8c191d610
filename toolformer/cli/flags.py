"""The one table from config field to command-line flag, and the rewrite of a library error
into the CLI's words.

The library's errors name the config field a caller set (``EvalConfig.limit must be at least
1``) and list it in :attr:`UserError.fields`; the CLI prints the flag the user typed instead
(``--limit must be at least 1``). A field missing here is printed as the library names it.
"""

from __future__ import annotations

from typing import Dict, Optional

# "Class.field" -> the flag every command spells it with
FIELD_FLAGS: Dict[str, str] = {
    # toolformer augment
    "AugmentConfig.input": "--input",
    "AugmentConfig.output": "--output",
    "AugmentConfig.tools": "--tools",
    "AugmentConfig.tool_options": "--tool-option",
    "AugmentConfig.limit": "--limit",
    "AugmentConfig.batch_size": "--batch-size",
    "AugmentConfig.chunk_size": "--chunk-size",
    "AugmentConfig.num_shards": "--num-shards",
    "AugmentConfig.shard_index": "--shard-index",
    "AugmentConfig.text_field": "--text-field",
    "AugmentConfig.id_field": "--id-field",
    "AugmentConfig.split": "--split",
    "AugmentConfig.encoding_errors": "--encoding-errors",
    "AugmentConfig.seed": "--seed",
    "AugmentConfig.overwrite": "--overwrite",
    "AugmentConfig.overwrite=True": "--overwrite",
    "iter_records.split": "--split",
    "AnnotatorConfig.seed": "--seed",
    # toolformer eval
    "EvalConfig.model": "--model",
    "EvalConfig.tasks": "--tasks",
    "EvalConfig.data_dir": "--data-dir",
    "EvalConfig.limit": "--limit",
    "EvalConfig.tools": "--tools",
    "EvalConfig.tools_enabled": "--tools/--no-tools",
    "EvalConfig.tool_options": "--tool-option",
    "EvalConfig.output_dir": "--output",
    "EvalConfig.max_new_tokens": "--max-new-tokens",
    "EvalConfig.num_return_sequences": "--num-return-sequences",
    "EvalConfig.resume": "--resume/--no-resume",
    "EvalConfig.resume=False": "--no-resume",
    "EvalConfig.tools_enabled=False": "--no-tools",
    # decoding: generate, chat, serve, eval
    "GenerationConfig.max_new_tokens": "--max-new-tokens",
    "GenerationConfig.do_sample": "--do-sample",
    "GenerationConfig.do_sample=False": "--no-do-sample",
    "GenerationConfig.temperature": "--temperature",
    "GenerationConfig.top_k": "--top-k",
    "GenerationConfig.top_p": "--top-p",
    "GenerationConfig.call_top_k": "--call-top-k",
    "GenerationConfig.call_threshold": "--call-threshold",
    "GenerationConfig.max_calls": "--max-calls",
    "GenerationConfig.max_call_tokens": "--max-call-tokens",
    "GenerationConfig.min_new_tokens": "--min-new-tokens",
    "GenerationConfig.batch_size": "--batch-size",
    "GenerationConfig.stop_strings": "--stop",
    # toolformer finetune
    "FinetuneConfig.data": "--data",
    "FinetuneConfig.output_dir": "--output",
    "FinetuneConfig.dataset_text_field": "--dataset-text-field",
    "FinetuneConfig.mix_plain": "--mix-plain",
    "FinetuneConfig.mix_ratio": "--mix-ratio",
    "FinetuneConfig.eval_fraction": "--eval-fraction",
    "FinetuneConfig.eval_data": "--eval-data",
    "FinetuneConfig.init_adapter": "--init-adapter",
    "FinetuneConfig.lora_target_modules": "--lora-target-modules",
    "FinetuneConfig.resume_from_checkpoint": "--resume",
    "TrainingArguments.bf16=False": "--no-bf16",
    # toolformer selftrain
    "SelfTrainConfig.tools": "--tools",
    "SelfTrainConfig.data.mix": "--mix",
    "SelfTrainConfig.data.corpus": "--corpus",
    "SelfTrainConfig.dev.data": "--dev-data",
    "SelfTrainConfig.round0_docs": "--round0-docs",
    "SelfTrainConfig.model": "--model",
    "SelfTrainConfig.output": "--output",
    "SelfTrainConfig.init_adapter": "--init-adapter",
    "SelfTrainConfig.data.data_dir": "--data-dir",
    "SelfTrainConfig.data.max_problem_steps": "--max-problem-steps",
    "SelfTrainConfig.dev.max_problem_steps": "--dev-max-problem-steps",
    "SelfTrainConfig.data.eval_sets": "--eval-sets",
    "SelfTrainConfig.improve.filter": "--filter",
    "SelfTrainConfig.improve.filter_options": "--filter-option",
    "SelfTrainConfig.improve.preference": "--preference",
    "SelfTrainConfig.improve.steps": "--improve-steps",
    "SelfTrainConfig.improve.max_kept_per_kind": "--max-kept-per-kind",
    "SelfTrainConfig.dev.size": "--dev-size",
    "SelfTrainConfig.grow.corpus_size": "--corpus-size",
    "SelfTrainConfig.grow.corpus_sizes": "--corpus-sizes",
    "SelfTrainConfig.grow.samples_per_prompt": "--samples",
    "SelfTrainConfig.grow.demonstrations_rounds": "--demonstrations-rounds",
    "SelfTrainConfig.grow.no_call_samples": "--no-call-samples",
    "SelfTrainConfig.grow.forced_call_samples": "--forced-call-samples",
    "SelfTrainConfig.grow.start_level": "--start-level",
    "SelfTrainConfig.grow.demonstrations": "--demonstrations",
    "SelfTrainConfig.grow.climb_at": "--climb-at",
    "SelfTrainConfig.grow.review_fraction": "--review-fraction",
    "SelfTrainConfig.calibration.size": "--calibration-size",
    "SelfTrainConfig.calibration.objective": "--calibration-objective",
    "SelfTrainConfig.data.wiki_docs": "--wiki-docs",
    "SelfTrainConfig.plain_ratio": "--plain-ratio",
    "SelfTrainConfig.patience": "--patience",
    "SelfTrainConfig.max_rounds": "--max-rounds",
    "SelfTrainConfig.keep_models": "--keep-models",
    # every command (a flag of the toolformer group)
    "$TOOLFORMER_TRUST_PICKLE_WEIGHTS=1": "--trust-pickle-weights",
}

# where a command spells a field its own way
COMMAND_FLAGS: Dict[str, Dict[str, str]] = {
    "augment": {"AnnotatorConfig.batch_size": "--model-batch-size"},
    "serve": {"GenerationConfig.batch_size": "--max-batch"},
}


def flag_for(field: str, command: Optional[str] = None) -> Optional[str]:
    """The flag that sets ``field`` (``"EvalConfig.limit"``) on ``command``, or None."""
    return COMMAND_FLAGS.get(command or "", {}).get(field) or FIELD_FLAGS.get(field)


def in_flags(message: str, fields, command: Optional[str] = None) -> str:
    """``message`` with each of ``fields`` that has a flag written as that flag."""
    for field in sorted(fields, key=len, reverse=True):  # a longer name first: no partial hits
        name, is_value, value = field.partition("=")
        flag = flag_for(field, command)
        if flag:
            message = message.replace(field, flag)
        elif is_value and flag_for(name, command):  # no spelling of this value: flag=value
            message = message.replace(field, f"{flag_for(name, command)}={value}")
    return message
