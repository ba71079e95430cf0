"""``graphprune inspect``, ``plan`` and ``zoo``: commands that read a model or a plan and print, and
write nothing."""

from __future__ import annotations

import argparse

from graphprune import cli_render as render
from graphprune import progress
from graphprune.cli_compile import check_spec, input_size_of, load_model

MAX_MEMBERS = 4  # member fqns shown per group by `inspect`


def cmd_plan(args: argparse.Namespace) -> int:
    """The recipe list and a plan's schema check need no torch; scheduling (the pass registry) does."""
    from graphprune.plan import RECIPES, load_plan
    from graphprune.plan.recipes import recipe_summary

    console = render.console()
    if args.list or args.plan is None:
        table = render.table("recipes (use as --plan NAME; copy the file to adapt it)", "name", "what it does", "file")
        for name, path in RECIPES.items():
            table.add_row(name, recipe_summary(name), render.text(path))
        console.print(table)
        return 0
    plan = load_plan(args.plan)
    if args.model:
        check_spec(args.model)
    from graphprune.plan.selectors import validate_selectors
    from graphprune.scheduler import schedule

    pipeline = schedule(plan)
    if args.model:
        model, _ = load_model(args.model, input_size_of(None, plan), args.submodule)
        validate_selectors(plan, dict(model.named_modules()))
    console.print(render.text(f"plan {plan.source.name}" + (f" for {args.model}" if args.model else "")
                              + ": valid; the scheduler would run (nothing run):"))
    console.print(render.text(pipeline.explain()))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    check_spec(args.spec)
    from graphprune.passes import run_pipeline
    from graphprune.state import CompileState
    from passes import AnalyzeChannels, Canonicalize, Trace

    with progress.spinner(f"inspect {args.spec}"):
        with progress.stage("load"):
            model, inputs = load_model(args.spec, args.input_size, args.submodule)
        state = run_pipeline(CompileState(args.spec, model, tuple(inputs)),
                             [Trace(), Canonicalize(), AnalyzeChannels()])
        heads_only = getattr(args, "heads", False)
        if heads_only:  # analysed split by whole heads at every reshape into heads, as a heads rule would be
            state = run_pipeline(state, [AnalyzeChannels(head_splits=tuple(state.analysis.table.spreads))])
    cg = state.channels
    console = render.console()

    shown = [g for g in cg.groups if (args.show_all or g.num_prunable) and (g.heads or not heads_only)]
    scope = " (attention heads)" if heads_only else ""
    title = f"channel groups of {args.spec}{scope}" + ("" if args.show_all else " (with prunable channels)")
    groups = render.table(title,
                          "group", "size", "prunable", "members", "first members (fqn[dim])", "frozen reasons",
                          show_lines=True)
    for g in shown:
        # weights first: a group's BN buffers and biases say little about which layers it spans
        ordered = sorted(g.members, key=lambda m: not m.fqn.endswith(".weight"))
        names = list(dict.fromkeys(f"{m.fqn}[{m.dim}]" for m in ordered))
        fqns = ", ".join(names[:MAX_MEMBERS]) + (f", +{len(names) - MAX_MEMBERS}" if len(names) > MAX_MEMBERS
                                                  else "")
        label = f"{g.index} (heads)" if g.heads else str(g.index)  # a channel of this group is one whole head
        groups.add_row(label, str(g.size), str(g.num_prunable), str(len(names)), render.text(fqns),
                       render.text(render.reasons(g.frozen_reasons)))
    console.print(groups)

    if cg.unknown_ops:
        unknown = render.table("unknown ops (channels through them are frozen)", "node", "op")
        for node, op in cg.unknown_ops:
            unknown.add_row(render.text(node), render.text(op))
        console.print(unknown)
    else:
        console.print("unknown ops: none")
    if cg.inexact:
        inexact = render.table("inexact reasons", "reason", "count", "nodes")
        for reason, nodes in sorted(cg.inexact.items()):
            inexact.add_row(render.text(reason), str(len(nodes)), render.text(render.nodes(nodes)))
        console.print(inexact)
    else:
        console.print("inexact reasons: none")

    frozen_groups = sum(1 for g in cg.groups if not g.num_prunable)
    hidden = len(cg.groups) - len(shown)
    channels = sum(g.size for g in cg.groups)
    prunable = sum(g.num_prunable for g in cg.groups)
    console.print(render.text(
        f"total: {len(cg.groups)} groups ({len(cg.groups) - frozen_groups} prunable, {frozen_groups} fully frozen"
        + (f", {hidden} not shown: use --all" if hidden else "") + f"), {channels} channels "
        f"({prunable} prunable), {len(cg.frozen)} frozen reasons, {len(cg.unknown_ops)} unknown ops, "
        f"{len(cg.inexact)} inexact reasons"))
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    """Names and input shapes from the catalog and the libraries' registries: no model is built."""
    if args.pattern is not None:
        return _zoo_matching(args.pattern)
    import models_zoo

    console = render.console()
    table = render.table("in-repo models", "name", "input shape", "description")
    for entry in models_zoo.catalog():
        table.add_row(render.text(entry.name), "x".join(map(str, entry.input_shape)), render.text(entry.description))
    console.print(table)
    sources = render.table("namespaces (randomly initialised, never downloaded)", "prefix", "models", "example",
                           "description")
    for source in models_zoo.catalog_sources():
        count = "-" if source.count is None else str(source.count)
        sources.add_row(render.text(source.prefix), count, render.text(source.example), render.text(source.description))
    console.print(sources)
    console.print("also: package.module:factory and path/to/file.py:factory "
                  "(a factory returning a module or (module, example_inputs)); "
                  "--submodule PATH prunes one part of a model (a detection model: --submodule backbone)")
    console.print(render.text("`graphprune zoo PATTERN` lists the models matching PATTERN with their input shapes "
                              "(e.g. resnet, 'timm:vit_*')"))
    return 0


def _zoo_matching(pattern: str) -> int:
    from models_zoo._listing import listing

    found, missing = listing(pattern)
    console = render.console()
    if found:
        table = render.table(f"models matching '{pattern}': {len(found)}", "spec", "input shape", "note")
        for model in found:
            table.add_row(render.text(model.spec), model.input_shape, render.text(model.note))
        console.print(table)
    else:
        console.print(render.text(f"no model matches '{pattern}' (a word matches anywhere in a spec; "
                                  "globs: 'timm:vit_*')"))
    for package in missing:
        console.print(render.text(f"{package}: not installed, not listed (pip install 'graphprune[zoo]')"))
    return 0
