"""The bugs that tools/plant_bugs.py plants, one at a time, each with the tests aimed at it.

Each entry: a name, a file, the exact text to replace (it must occur exactly once), its
replacement, and the pytest arguments that should catch it. Keep the list growing with the code:
when you add a feature, add the bugs a careless change to it would bring, and the tests that catch
them. The first nine are the ones issue 17 found passing the whole suite.
"""
from typing import NamedTuple


class Bug(NamedTuple):
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


LR = "src/training/lr_schedule.py"
BUILD = "src/training/build.py"
TRAINER = "src/training/trainer.py"
CHECKPOINTS = "src/training/checkpoint_manager.py"
EVAL = "src/evaluation/eval_checkpoints.py"
METRICS = "src/evaluation/metrics.py"
PIPELINE = "src/data/pipeline.py"
SUNK = "src/training/sunk_steps.py"

LR_TESTS = ("tests/unit/test_lr_schedule.py",)
BUILD_TESTS = ("tests/unit/test_build.py",)
PRUNE_TESTS = ("tests/unit/test_checkpoint_manager.py",)
METRICS_TESTS = ("tests/unit/test_metrics.py",)
LAUNCHER_TESTS = ("tests/e2e/test_launchers.py", "-k", "failing_job or foreground")
TRAIN_RUN_TESTS = ("tests/e2e/test_train_eval.py", "-k", "writes_checkpoints")
SUNK_TESTS = ("tests/unit/test_sunk_steps.py",)
SK_OPS = "src/layers/cpu_selective_kernel.cc"
SK_OPS_TESTS = ("tests/unit/test_cpu_selective_kernel.py",)
ONEDNN_CONV = "src/layers/onednn_conv.py"
BATCHNORM = "src/layers/cpu_batchnorm.cc"
POINTWISE = "src/layers/cpu_pointwise_conv.cc"
INFERENCE_ONEDNN_TESTS = ("tests/unit/test_inference_form.py", "-k", "onednn")
POINTWISE_TESTS = ("tests/unit/test_onednn_conv.py", "-k", "matches_native and 1x1")
BATCHNORM_TESTS = ("tests/unit/test_cpu_batchnorm.py",)
ONEDNN_TRAIN_TESTS = ("tests/unit/test_onednn_conv.py", "-k", "copies_no_weights")
RUN_SETTINGS_TESTS = ("tests/unit/test_run_settings.py",)
FOLLOW_TESTS = ("tests/e2e/test_follow_the_run.py",)
EXPORT_CHECK_TESTS = ("tests/unit/test_export_check.py",)
EVAL_FOLDER_TESTS = ("tests/unit/test_eval_folder.py",)

BUGS = [
    # --- the nine of issue 17 ---
    Bug("steps-mode milestones at 90% instead of 80%", LR,
        "STEP_MILESTONES = (0.3, 0.6, 0.8)", "STEP_MILESTONES = (0.3, 0.6, 0.9)", LR_TESTS),
    Bug("biases dropped from the no-weight-decay group", BUILD,
        'NO_DECAY_SUFFIXES = (".gamma", ".beta", ".bias")', 'NO_DECAY_SUFFIXES = (".gamma", ".beta")', BUILD_TESTS),
    Bug("training loss built without label smoothing", TRAINER,
        "CrossEntropySmooth(cfg.label_smooth_factor, cfg.class_num)", "CrossEntropySmooth(0.0, cfg.class_num)",
        ("tests/unit/test_trainer_loss.py",)),
    Bug("mid-epoch resume takes the LR position from epoch * steps", TRAINER,
        "self.steps_per_epoch, state.global_step)", "self.steps_per_epoch, state.epoch * self.steps_per_epoch)",
        ("tests/e2e/test_faults.py", "-k", "sigterm_saves")),
    Bug("pruning keeps K-1 checkpoints, the oldest ones", CHECKPOINTS,
        "for _, path in sorted(runs)[:-keep]:", "for _, path in sorted(runs, reverse=True)[:len(runs) - keep + 1]:",
        PRUNE_TESTS),
    Bug("eval calls the lowest top-1 the best", EVAL,
        "max(scored, key=lambda o: o.result.top1)", "min(scored, key=lambda o: o.result.top1)", METRICS_TESTS),
    Bug("run_standalone_train.sh swallows train.py's exit code", "scripts/run_standalone_train.sh",
        '"${TRAIN_FLAGS[@]}" || code=$?', '"${TRAIN_FLAGS[@]}" || true', LAUNCHER_TESTS),
    Bug("top-1 is the least likely class", METRICS,
        "return top_k[:, 0], top_k[:, 0] == labels,",
        "return logits.argmin(axis=1), logits.argmin(axis=1) == labels,", METRICS_TESTS),
    Bug("every distributed rank reads rank 0's shard", BUILD,
        "rank_id=place.rank_id, rank_size=place.rank_size", "rank_id=0, rank_size=place.rank_size", BUILD_TESTS),
    # --- a fresh set in the same files ---
    Bug("warmup one step ahead", LR,
        "(lr_max - lr_init) * steps[:warmup_steps] / warmup_steps",
        "(lr_max - lr_init) * (steps[:warmup_steps] + 1) / warmup_steps", LR_TESTS),
    Bug("cosine decay over half a period", LR,
        "np.cos(math.pi * progress)", "np.cos(0.5 * math.pi * progress)", LR_TESTS),
    Bug("poly decay ignores poly_power", LR,
        "(1.0 - progress) ** poly_power", "(1.0 - progress)", LR_TESTS),
    Bug("steps mode drops one level too few", LR,
        "ratio ** (drops / len(STEP_MILESTONES))", "ratio ** (drops / (len(STEP_MILESTONES) + 1))", LR_TESTS),
    Bug("BatchNorm scale gets weight decay", BUILD,
        'NO_DECAY_SUFFIXES = (".gamma", ".beta", ".bias")', 'NO_DECAY_SUFFIXES = (".beta", ".bias")', BUILD_TESTS),
    Bug("LR always scaled by the device count", BUILD,
        "scale = rank_size if cfg.lr_scale_with_devices else 1", "scale = rank_size", LR_TESTS),
    Bug("pruning orders checkpoints by file name", CHECKPOINTS,
        'runs.append((meta["global_step"], path))', "runs.append((path, path))", PRUNE_TESTS),
    Bug("pruning also counts (and deletes) checkpoints that are not training checkpoints", CHECKPOINTS,
        'if meta and meta.get("resumable") and isinstance(meta.get("global_step"), int):\n'
        '                runs.append((meta["global_step"], path))',
        'if meta:\n                runs.append((meta.get("global_step", 0), path))', PRUNE_TESTS),
    Bug("top-5 is a top-4", METRICS, "k = min(k, logits.shape[1])", "k = min(k - 1, logits.shape[1])",
        METRICS_TESTS),
    Bug("eval loss divided by the batch count", METRICS,
        "loss=loss_sum / total", "loss=loss_sum / len(predictions)", METRICS_TESTS),
    Bug("the padding of a fixed-batch MindIR is kept", METRICS,
        "np.asarray(predict(images), dtype=np.float32)[:count]", "np.asarray(predict(images), dtype=np.float32)",
        METRICS_TESTS),
    Bug("eval best is the last on a tie", EVAL,
        "max(scored, key=lambda o: o.result.top1)", "max(reversed(scored), key=lambda o: o.result.top1)",
        METRICS_TESTS),
    Bug("training shards keep the remainder (ranks take different step counts)", PIPELINE,
        "usable = count - count % rank_size if equal else count", "usable = count",
        ("tests/unit/test_dataset.py", "-k", "shard")),
    Bug("best.ckpt is replaced by a worse epoch", TRAINER,
        "result.top1 > state.best_top1", "result.top1 < state.best_top1", TRAIN_RUN_TESTS),
    Bug("every epoch restarts the LR schedule", TRAINER,
        "lr[state.global_step - first_step:])", "lr)", TRAIN_RUN_TESTS),
    Bug("run_eval.sh swallows eval.py's exit code", "scripts/run_eval.sh",
        "|| code=$?", "|| true", LAUNCHER_TESTS),
    Bug("label smoothing ignored by the loss itself", "src/training/loss.py",
        "label_smoothing=smooth_factor", "label_smoothing=0.0", ("tests/unit/test_loss.py",)),
    # --- several steps per host round trip (issue 16) ---
    Bug("the sink counters are never reset", SUNK,
        "        self.totals.set_data(ms.Tensor(np.zeros(5, np.float32)))\n", "", SUNK_TESTS),
    Bug("the EMA skips the third step of every sink", SUNK,
        "self.ema_update(ops.depend(skipped, loss))",
        "self.ema_update(ops.logical_or(ops.depend(skipped, loss), self.totals[APPLIED] == 2))",
        ("tests/e2e/test_sunk_steps.py", "-k", "five_sunk")),
    Bug("a NaN loss inside a sink is not checked", SUNK, "    if totals.nonfinite:\n", "    if False:\n",
        ("tests/e2e/test_faults.py", "-k", "nan_loss_with_a_fixed and 5")),
    Bug("a resumed EMA restores the weights' averages but not the BN statistics'", "src/training/ema.py",
        "{n: saved[n] for n in names})", "{n: saved[n] for n in names if 'moving' not in n})",
        ("tests/e2e/test_sunk_steps.py", "-k", "sigterm_inside")),
    Bug("the EMA averages the trainable weights only", "src/training/ema.py",
        "params = list(net.get_parameters())", "params = list(net.trainable_params())",
        ("tests/e2e/test_training_extras.py",)),
    Bug("a SIGTERM checkpoint records the sink's first step", TRAINER,
        "state.step_in_epoch = last % self.steps_per_epoch", "state.step_in_epoch = first % self.steps_per_epoch",
        ("tests/e2e/test_sunk_steps.py", "-k", "sigterm_inside")),
    Bug("skipped steps are not counted on the device", SUNK,
        "skipped.astype(ms.float32), nonfinite", "ops.zeros((), ms.float32), nonfinite", SUNK_TESTS),
    Bug("data_sink runs in PyNative, one batch per call", SUNK, "jit_config=ms.JitConfig())", "jit_config=None)",
        SUNK_TESTS),
    Bug("sink_size auto stops below 50", "src/utils/device.py",
        "if size <= AUTO_SINK_LIMIT", "if size < AUTO_SINK_LIMIT", SUNK_TESTS),
    Bug("a sink that crosses log_interval prints no progress line", "src/training/train_log.py",
        "step_in_epoch // interval == (step_in_epoch - steps) // interval", "step_in_epoch % interval", SUNK_TESTS),
    # --- issue 14, round 2: the CPU's broadcasting Mul keeps 4x its output ---
    Bug("the fast SK unit multiplies by broadcasting", "src/layers/selective_kernel.py",
        "        return x * ops.broadcast_to(channel_weights, x.shape)\n", "        return x * channel_weights\n",
        ("tests/unit/test_sk_memory.py",)),
    Bug("the fast SK unit does not broadcast explicitly", "src/layers/selective_kernel.py",
        "self.broadcasts_explicitly = conv_impl in CPU_CONV_IMPLS", "self.broadcasts_explicitly = False",
        ("tests/unit/test_sk_memory.py",)),
    Bug("the fast SK unit's explicit broadcast scales the wrong weights", "src/layers/selective_kernel.py",
        "ops.broadcast_to(channel_weights, x.shape)", "ops.broadcast_to(channel_weights * 1.01, x.shape)",
        ("tests/unit/test_conv_impl.py", "-k", "whole_network")),
    Bug("the benchmark pairs each round of one implementation with another round of the peer", "benchmark.py",
        "zip(a_rounds, b_rounds)", "zip(a_rounds, reversed(b_rounds))",
        ("tests/e2e/test_benchmark.py", "-k", "paired")),
    Bug("benchmark --profile reports kernels over all profiled steps, not per step", "benchmark.py",
        'float(row["type_occurrences"]) / args.steps', 'float(row["type_occurrences"])',
        ("tests/e2e/test_benchmark.py", "-k", "profile_prints")),
    # --- issue 14, round 2: conv_impl onednn ---
    Bug("the onednn conv ignores dilation", "src/layers/onednn_conv.py",
        '"onednn_conv", [stride, dilation, onednn_threads()]', '"onednn_conv", [stride, 1, onednn_threads()]',
        ("tests/unit/test_onednn_conv.py", "-k", "matches_native")),
    Bug("the onednn weight gradient has kh and kw transposed", "src/layers/onednn_conv.py",
        "        return dx, dweight, ops", "        return dx, dweight.transpose(0, 1, 3, 2), ops",
        ("tests/unit/test_onednn_conv.py", "-k", "matches_native")),
    # (Padding the right edge like the left is no bug: oneDNN floors the output size the same way.)
    Bug("the onednn C++ op ignores dilation", "src/layers/onednn_conv.cc",
        "d.dilates = {g.dilation - 1, g.dilation - 1};", "d.dilates = {0, 0};",
        ("tests/unit/test_onednn_conv.py", "-k", "matches_native")),
    Bug("the onednn build key ignores the max-pool source, so a changed .cc reuses a stale library",
        "src/layers/onednn_build.py", "files = [*SOURCES, *LOCAL_HEADERS,", "files = [*SOURCES[:1], *LOCAL_HEADERS,",
        ("tests/unit/test_onednn_conv.py", "-k", "changed_source")),
    Bug("the inference max-pool lets padding win over negative values", "src/layers/cpu_max_pool.cc",
        "float best = -std::numeric_limits<float>::infinity();", "float best = 0;",
        ("tests/unit/test_cpu_max_pool.py",)),
    Bug("the onednn stem uses the inference max-pool in training too", "src/sknet50.py",
        "if self.inference_pool is not None and not self.training:", "if self.inference_pool is not None:",
        ("tests/unit/test_conv_impl.py", "-k", "whole_network")),
    Bug("the onednn stem pools without the inference max-pool", "src/sknet50.py",
        'CpuMaxPool2d(3, 2, 1) if imagenet and conv_impl == "onednn" else None', "None",
        ("tests/unit/test_cpu_max_pool.py", "-k", "stem")),
    Bug("a successful onednn build leaves its compiler log behind", "src/layers/onednn_build.py",
        "    os.remove(log)  # only", "    pass  # only", ("tests/unit/test_onednn_conv.py", "-k", "second_load")),
    Bug("conv_impl onednn is accepted on GPU and Ascend", "src/utils/device.py",
        'if conv_impl in CPU_CONV_IMPLS and device_target != "CPU":', 'if conv_impl == "fast" and device_target != "CPU":',
        ("tests/unit/test_onednn_conv.py", "-k", "cpu_only")),
    # --- issue 14, round 3: the SK unit's C++ pooling and selection ---
    Bug("the onednn build key ignores the thread-pool header", "src/layers/onednn_build.py",
        "files = [*SOURCES, *LOCAL_HEADERS, *vendored]", "files = [*SOURCES, *vendored]",
        ("tests/unit/test_onednn_conv.py", "-k", "changed_source")),
    Bug("the oneDNN conv's gradient is a Cell bprop again (every weight copied at every step)", ONEDNN_CONV,
        "        return self.forward(x, weight, self.geometry)\n",
        "        return self.forward(x, weight, self.geometry)\n\n    def bprop(self, x, weight, out, dout):\n"
        "        return self._gradients(x, weight, self.geometry, out, dout)[:2]\n", ONEDNN_TRAIN_TESTS),
    Bug("the oneDNN convs of different shapes share one gradient", ONEDNN_CONV,
        'op.add_prim_attr("sknet_shape_key", key)', 'op.add_prim_attr("sknet_shape_key", "")',
        ("tests/unit/test_conv_impl.py", "-k", "whole_network and onednn")),
    Bug("the SK selection's gradient gives the second path the whole upstream gradient", SK_OPS,
        "gz[i] = g[i] - scaled;", "gz[i] = g[i];", SK_OPS_TESTS),
    Bug("the SK selection's weight gradient forgets the second path", SK_OPS,
        "sum += double(g[i]) * (double(x[i]) - double(z[i]));", "sum += double(g[i]) * double(x[i]);", SK_OPS_TESTS),
    Bug("the SK pooling's gradient is not divided by the map's size", SK_OPS,
        "const float value = float(double(ds[p]) / double(hw));", "const float value = ds[p];", SK_OPS_TESTS),
    Bug("the 1x1 GEMM op ignores the stride", POINTWISE,
        "row[(i * s.Wo + j) * s.C] = plane[i * s.stride * s.W + j * s.stride];",
        "row[(i * s.Wo + j) * s.C] = plane[i * s.W + j];", POINTWISE_TESTS),
    Bug("the 1x1 GEMM op leaves the skipped pixels' gradient unset", POINTWISE,
        "if (H != s.Ho || W != s.Wo) std::memset", "if (false) std::memset", POINTWISE_TESTS),
    Bug("the 1x1 GEMM op takes 2x2 images as rows without gathering them", POINTWISE,
        "if (s.H * s.W == 1) return x;", "if (s.H * s.W <= 4) return x;", POINTWISE_TESTS),
    Bug("the 1x1 GEMM op's epilogue skips the ReLU", POINTWISE,
        "row[o] = relu && v < 0 ? 0.f : v;", "row[o] = v;", INFERENCE_ONEDNN_TESTS),
    Bug("the oneDNN conv's epilogue skips the ReLU", "src/layers/onednn_conv.cc",
        "    if (relu) {\n        post_ops ops;", "    if (false) {\n        post_ops ops;", INFERENCE_ONEDNN_TESTS),
    Bug("a folded onednn ConvBNAct always applies the ReLU", "src/layers/conv.py",
        "return self.conv.with_bias(x, self.bn.bias, self.act is not None)",
        "return self.conv.with_bias(x, self.bn.bias, True)", INFERENCE_ONEDNN_TESTS),
    Bug("the thread pool's ranges leave a gap (the SK and BatchNorm ops)", "src/layers/cpu_thread_pool.h",
        "fn(count * task / n, count * (task + 1) / n); });", "fn(count * task / n, count * (task + 1) / n - 1); });",
        ("tests/unit/test_cpu_selective_kernel.py", "tests/unit/test_cpu_batchnorm.py")),
    Bug("the BatchNorm op's moving variance takes the biased batch variance", BATCHNORM,
        "float(variance[c] * count / (count - 1))", "variance[c]", BATCHNORM_TESTS),
    Bug("the BatchNorm op's gamma gradient forgets to centre x", BATCHNORM,
        "b += g[i] * (p[i] - m);", "b += g[i] * p[i];", BATCHNORM_TESTS),
    Bug("onednn networks keep MindSpore's BatchNorm", "src/layers/fold_batchnorm.py",
        'if conv_impl == "onednn":', 'if conv_impl == "none":', BATCHNORM_TESTS),
    Bug("the onednn unit pools and selects with the two-path ops whatever its paths", "src/layers/selective_kernel.py",
        'two_path_ops = conv_impl == "onednn" and paths == 2', 'two_path_ops = conv_impl == "onednn"', SK_OPS_TESTS),
    # --- config and command line: device_target auto, --help per script, original flags, bounds, hostile files ---
    Bug("device_target auto is left unresolved for the device policies", "src/utils/config.py",
        'values["device_target"] = resolve_device_target(values["device_target"])',
        'values["device_target"] = values["device_target"]', ("tests/unit/test_config.py", "-k", "auto")),
    Bug("device_target auto always takes the CPU", "src/utils/device.py",
        'chosen = next(target for target in DEVICE_TARGETS if target in available or target == "CPU")',
        'chosen = "CPU"', ("tests/unit/test_config.py", "-k", "auto")),
    Bug("a missing GPU says install the GPU build (2.10 has none)", "src/utils/device.py",
        "plugin, which needs {DEVICE_NEEDS[device_target]} ", "plugin; install the {device_target} build ",
        ("tests/unit/test_config.py", "-k", "missing_chip")),
    Bug("--help and the flags of a script offer every key", "src/utils/config.py",
        "read = keys_of(script)", "read = keys_of(None)", ("tests/unit/test_config_rules.py", "-k", "help or read")),
    Bug("a flag of a key the script does not read is ignored silently", "src/utils/config.py",
        "        _refuse_unread_flags(extras, script or \"this script\")", "        pass",
        ("tests/unit/test_config_rules.py", "-k", "does_not_read")),
    Bug("--help shows NONETYPE for a path key", "src/utils/config.py",
        'return KEYS[key].metavar if key in KEYS and KEYS[key].metavar else "PATH"',
        "return type(default).__name__.upper()", ("tests/unit/test_config_rules.py", "-k", "help")),
    Bug("train.py --train_url is not an alias of output_path", "src/utils/config_rules.py",
        'TRAIN: {"train_url": "output_path"},', "TRAIN: {},", ("tests/unit/test_config.py", "-k", "original")),
    Bug("--device_num is not compared with the launch's process count", "src/utils/config_rules.py",
        "if str(launched) != str(count):", "if False:", ("tests/unit/test_config.py", "-k", "original")),
    Bug("export --width may differ from --image_size", "src/utils/config_rules.py",
        'if "image_size" in given and values["image_size"] != side:', "if False:",
        ("tests/unit/test_config.py", "-k", "width")),
    Bug("--run_modelarts true is accepted", "src/utils/config_rules.py",
        'if str(value).strip().lower() not in ("false", "0", "no", "off"):', "if False:",
        ("tests/unit/test_config.py", "-k", "original")),
    Bug("postprocess --label_dir is taken as the labels file", "src/utils/config_rules.py",
        'values["label_path"] = os.path.join(str(value), "labels.npy")', 'values["label_path"] = str(value)',
        ("tests/unit/test_config.py", "-k", "original")),
    Bug("class_num has no upper bound", "src/utils/config_rules.py",
        '"class_num": Key(Range(2, 100_000,', '"class_num": Key(Range(2, float("inf"),',
        ("tests/unit/test_config_rules.py", "-k", "upper_bound or bounded")),
    Bug("sink_size has no upper bound", "src/utils/config_rules.py",
        'r"auto|[1-9][0-9]{0,4}|100000"', 'r"auto|[1-9][0-9]*"', ("tests/unit/test_config_rules.py", "-k", "bound")),
    Bug("a config file is parsed whatever its size", "src/utils/config.py",
        "if len(raw) > MAX_CONFIG_BYTES:", "if False:", ("tests/unit/test_config.py", "-k", "size_limit")),
    Bug("a YAML alias bomb is accepted", "src/utils/config.py",
        "if size > MAX_CONFIG_VALUES:", "if False:", ("tests/unit/test_config.py", "-k", "alias")),
    Bug("an error formats the whole value", "src/utils/safe_text.py",
        "return clip(_REPR.repr(value))", "return repr(value)",
        ("tests/unit/test_config_rules.py", "-k", "unbounded_value")),
    Bug("config.yaml keeps the password of --download_url", "src/utils/config.py",
        "values = {key: redact_url(value) if isinstance(value, str)", "values = {key: value if isinstance(value, str)",
        ("tests/unit/test_config.py", "-k", "redact")),
    Bug("the download prints the URL with its password", "src/data/download.py",
        'print(f"downloading {redact_url(url)} into', 'print(f"downloading {url} into',
        ("tests/unit/test_config.py", "-k", "download_messages")),
    Bug("a password holding @ is redacted only up to its first @", "src/utils/safe_text.py",
        r'[^/?#\s]*@")', r'[^/?#@\s]*@")', ("tests/unit/test_config.py", "-k", "redact")),
    Bug("loading the config asks MindSpore for the devices, so --help loads MindSpore", "src/utils/config.py",
        "from src.utils.device import resolve_device_target\n",
        "from src.utils.device import available_device_targets, resolve_device_target\n"
        "AVAILABLE = available_device_targets()\n", ("tests/e2e/test_cli_help.py",)),
    # --- eval, export and preprocess follow the run; export's relative check; a run folder's best.ckpt ---
    Bug("a flag that contradicts the run is silently overridden", "src/utils/run_settings.py",
        "if where and ours != value:", "if False:", RUN_SETTINGS_TESTS),
    Bug("--use_ema on a run without EMA is not refused up front", "src/utils/run_settings.py",
        "if cfg.use_ema and settings.has_ema is False:", "if False:", RUN_SETTINGS_TESTS),
    Bug("load_config does not count --config_path keys as given", "src/utils/config.py",
        "cfg._config_file_keys = frozenset(ALIASES.get(key, key) for key in from_file)", "pass", RUN_SETTINGS_TESTS),
    Bug("eval.py does not follow the run", EVAL, "    follow_run(cfg, cfg.checkpoint_path)\n", "",
        FOLLOW_TESTS + ("-k", "mindirs_size or run_folder")),
    Bug("export.py does not follow the checkpoint", "export.py", "    follow_run(cfg, cfg.ckpt_file)\n", "",
        FOLLOW_TESTS + ("-k", "mindirs_size or contradicts")),
    Bug("preprocess.py does not follow --checkpoint_path", "preprocess.py",
        'follow_run(cfg, cfg.checkpoint_path, ("class_num", "image_size"))', "pass", FOLLOW_TESTS + ("-k", "preprocess")),
    Bug("export's check is absolute again", "export.py", "limit = max(tolerance * scale, ",
        "limit = max(tolerance, ", EXPORT_CHECK_TESTS),
    Bug("export's check ignores the network's rounding sensitivity", "export.py",
        "ROUNDING_MARGIN * sensitivity)", "0.0)", EXPORT_CHECK_TESTS),
    Bug("export's check lets a NaN difference through", "export.py", "if not difference <= limit:",
        "if difference > limit:", EXPORT_CHECK_TESTS),
    Bug("a folder lists best.ckpt first", EVAL, "return targets[:position] + [Target(best, name, twin)] + targets[position:]",
        "return [Target(best, name, twin)] + targets", EVAL_FOLDER_TESTS),
    Bug("a folder evaluates best.ckpt again after its epoch checkpoint", EVAL, "if target.same_as in evaluated:",
        "if False:", EVAL_FOLDER_TESTS),
    Bug("an EMA best.ckpt counts as the twin of its epoch's trained weights", EVAL,
        "\n                and weights_kind(record, use_ema) == weights_kind(meta, use_ema)", "", EVAL_FOLDER_TESTS),
]
