"""Replay the Pulumi engine's step sequences against a dynamic provider host, as the engine's source does them.

Read from pulumi/pulumi (a 2026 snapshot; paths in that repository, functions named so they can be found again):

- ``pkg/resource/deploy/step_generator.go``
  - ``generateResourceSteps``: Check first, with the old *inputs* as olds — or **without olds** for a new
    resource, one being re-created, or one targeted for replacement (``isTargetedReplace``: ``--replace URN``
    or ``old.Taint``).
  - ``issueCheckFailures``: a failure against a property prints ``inputs[failure.Property]`` from the
    *program's* inputs with ``%v``; a failure against no property prints the reason alone. The real CLI
    (v3.274.1, tests/engine) shows a value the program marked secret as ``{[secret]}`` — ByokKey marks
    ``key_password`` itself — and prints any other value in clear; this driver prints secrets in clear too, a
    stricter model (pulumi/pulumi#19465), so no test depends on that mask.
  - ``diff``: a targeted replace, a ``replaceWith``/``deletedWith`` cascade or a provider change returns a
    replace on ``id`` (or ``replaceWith``/``deletedWith``/``provider``) **without calling the provider's Diff**;
    otherwise ``diffResource`` calls Diff with the old outputs (and old inputs) against the checked inputs,
    keeping unknowns in previews.
  - ``continueStepsFromDiff``: DIFF_NONE -> a Same step; changes without replaces -> Update; replaces ->
    refused for a ``protect``-ed resource, a **second Check without olds** (skipped on a targeted replace),
    then create-before-delete, or delete-before-create when the provider's Diff or the
    ``deleteBeforeReplace`` option says so. Create-before-delete deletes the old resource after every
    registration (``GenerateDeletes``, in reverse dependency order).
  - ``calculateDependentReplacements``: before a delete-before-replace, every resource whose inputs come from
    the condemned one gets a Diff with those inputs unknown; those it says to replace are deleted first and
    created again when they register.
- ``pkg/resource/deploy/step.go``
  - ``SameStep.Apply``: keeps the old ID and **old outputs**; the new (checked) inputs are stored.
  - ``DeleteStep.Apply``: refuses a protected resource (unless it is being replaced); nothing in a preview;
    no Delete call for ``retainOnDelete``.
  - ``RefreshStep.Apply``: Read(id, old inputs, old outputs) — no preview guard, so ``pulumi preview
    --refresh`` and a refresh's preview call it too; a blank id drops the resource; inputs Read returns
    **replace the stored inputs wholesale**; then a Diff of (refreshed inputs, refreshed outputs) against the
    old inputs, inverted, for the display.
- ``pkg/resource/plugin/provider_plugin.go``: ``Create``/``Update`` in a preview never reach a provider that
  answered ``supportsPreview=false`` (the inputs are echoed as the outputs); secrets are stripped before every
  call because Configure answered ``acceptSecrets=false``.
- ``sdk/python/lib/pulumi/dynamic/__main__.py``: the servicer those RPCs reach — Diff forwards only changes,
  replaces and deleteBeforeReplace; Read hands ``read()`` the old outputs.

A ``Goal`` is what the program registers (properties, options); ``Ref`` is an output of another resource,
unknown in a preview while that resource is being created or replaced. Every RPC made is logged in
``Engine.calls`` as ``"<Method> <name>"`` so a test can assert the exact sequence. Not replayed: parallel step
execution (steps run one at a time in registration order, except that a refresh sends every Read before
the Diffs, as the engine's parallel refresh does), plans, policy packs, hooks. ``up`` is ``up --skip-preview``
unless ``preview_first`` (plain ``pulumi up`` runs the preview pass first: every Check twice).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from tests.provider.grpc_host import PROJECT, ProviderHost, plain, struct

STACK = "replay"
UNKNOWN = rpc.UNKNOWN


class EngineError(Exception):
    """What the engine would stop the operation with (check errors, protect, a provider error)."""


@dataclass(frozen=True)
class Secret:
    """A secret input from the program (not from stack config: the engine would print it in clear)."""

    value: Any


@dataclass(frozen=True)
class Ref:
    """Output ``prop`` of the resource named ``name`` (an Output in the program)."""

    name: str
    prop: str


@dataclass(frozen=True)
class Goal:
    """One resource registration: its type, name, properties (with ``__provider``) and resource options."""

    type: str
    name: str
    props: Mapping[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool | None = None
    replace_with: tuple[str, ...] = ()

    @property
    def urn(self) -> str:
        return urn(self.type, self.name)


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::{type_}::{name}"


@dataclass
class State:
    """A resource in the checkpoint: id, inputs (secret ones still marked), outputs and the options kept."""

    goal: Goal
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    taint: bool = False

    @property
    def name(self) -> str:
        return self.goal.name


@dataclass
class Engine:
    """A stack: its state, and the operations ``preview``, ``up``, ``refresh`` and ``destroy`` over ``host``."""

    host: ProviderHost
    state: dict[str, State] = field(default_factory=dict)  # by name, in registration order
    calls: list[str] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)  # diagnostics the CLI would show

    # --- operations ------------------------------------------------------------------------------------------
    def preview(self, goals: Iterable[Goal], *, replace: Iterable[str] = (), refresh: bool = False) -> list[str]:
        """``pulumi preview [--refresh] [--replace]``: returns the planned steps; state and vault unchanged."""
        saved = copy.deepcopy(self.state)
        try:
            if refresh:  # the plan starts from the refreshed state, which is then thrown away with the rest
                self.refresh()
            return self._run(list(goals), set(replace), preview=True)
        finally:
            self.state = saved

    def up(self, goals: Iterable[Goal], *, replace: Iterable[str] = (), preview_first: bool = False) -> list[str]:
        """``pulumi up --skip-preview [--replace name ...]``: returns the steps taken. ``preview_first``: plain
        ``pulumi up``, which runs the whole preview pass (Check, Diff with unknowns) before the update pass."""
        goals = list(goals)
        if preview_first:
            self.preview(goals, replace=replace)
        return self._run(goals, set(replace), preview=False)

    def taint(self, name: str) -> None:
        """``pulumi state taint``: the next up replaces the resource."""
        self.state[name].taint = True

    def refresh(self, *, preview: bool = False, preview_first: bool = False) -> list[str]:
        """``pulumi refresh --skip-preview`` (or its preview, or the refresh in ``preview --refresh``): Read every
        resource. ``preview_first``: plain ``pulumi refresh``, whose preview already Reads everything once."""
        if preview_first:
            self.refresh(preview=True)
        # The engine runs the refresh steps in parallel: every Read goes out first, each Diff follows its Read.
        reads = [(name, old, self._rpc("Read", name, self.host.stub.Read, provider_pb2.ReadRequest(
            id=old.id, urn=old.goal.urn, properties=struct(old.outputs), inputs=struct(self._plain(old.inputs)))))
            for name, old in list(self.state.items())]
        steps = []
        for name, old, response in reads:
            if not response.id:
                steps.append(f"refresh-delete {name}")
                if not preview:
                    del self.state[name]
                continue
            outputs = plain(response.properties)
            inputs = plain(response.inputs) if response.HasField("inputs") else old.inputs
            # RefreshStep.Apply: Diff(olds=refreshed outputs, oldInputs=refreshed inputs, news=old inputs), inverted.
            diff = self._diff(name, old.goal.urn, response.id, outputs, inputs, self._plain(old.inputs))
            drifted = diff.changes == provider_pb2.DiffResponse.DIFF_SOME
            steps.append(f"refresh-{'update' if drifted else 'same'} {name}")
            if not preview:
                old.id, old.outputs, old.inputs = response.id, outputs, self._remark(old.inputs, inputs)
        return steps

    def destroy(self) -> list[str]:
        """``pulumi destroy``: Delete every resource, last registered first."""
        steps = []
        for name in reversed(list(self.state)):
            steps.append(self._delete(self.state[name], replacing=False, preview=False))
            del self.state[name]
        return steps

    # --- planning --------------------------------------------------------------------------------------------
    def _run(self, goals: list[Goal], replace_targets: set[str], *, preview: bool) -> list[str]:
        steps: list[str] = []
        replaced: set[str] = set()
        recreate: set[str] = set()  # dependents deleted ahead of a delete-before-replace
        pending_deletes: list[State] = []
        new_state: dict[str, State] = {}
        for goal in goals:
            props = self._resolve(goal.props, new_state, preview)
            old = self.state.get(goal.name)
            if goal.name in recreate:  # its old self was deleted earlier in this run: a plain create
                steps.append(f"create-replacement {goal.name}")
                new_state[goal.name] = self._create(goal, props, self._check(goal, props, None), preview)
                continue
            targeted = old is not None and (goal.name in replace_targets or old.taint)
            checked = self._check(goal, props, None if (old is None or targeted) else old.inputs)
            if old is None:
                steps.append(f"create {goal.name}")
                new_state[goal.name] = self._create(goal, props, checked, preview)
                continue
            if targeted:  # step_generator.go diff(): a replace blamed on "id", no provider Diff
                replaces, changes, dbr = ["id"], True, False
            elif any(r in replaced for r in goal.replace_with):
                replaces, changes, dbr = ["replaceWith"], True, False
            else:
                diff = self._diff(goal.name, goal.urn, old.id, old.outputs, self._plain(old.inputs), checked)
                replaces, dbr = list(diff.replaces), diff.deleteBeforeReplace
                changes = diff.changes == provider_pb2.DiffResponse.DIFF_SOME
                if diff.changes == provider_pb2.DiffResponse.DIFF_UNKNOWN:  # the engine diffs the inputs itself
                    changes = self._plain(old.inputs) != checked
            if not changes:
                steps.append(f"same {goal.name}")
                new_state[goal.name] = State(goal, old.id, self._remark(props, checked), old.outputs)
                continue
            if not replaces:
                steps.append(f"update {goal.name}")
                new_state[goal.name] = self._update(goal, old, props, checked, preview)
                continue
            if goal.protect and old.goal.protect:
                self.printed.append(f"error: unable to replace resource {goal.urn!r} as it is currently marked for "
                                    "protection")
                if not preview:
                    raise EngineError(self.printed[-1])
            replaced.add(goal.name)
            if not targeted:  # the second Check, without olds (continueStepsFromDiff)
                checked = self._check(goal, props, None)
            if goal.delete_before_replace is not None:
                dbr = goal.delete_before_replace
            if dbr:
                for dependent in self._dependent_replacements(goal.name):
                    steps.append(self._delete(dependent, replacing=True, preview=preview))
                    recreate.add(dependent.name)
                steps.append(self._delete(old, replacing=True, preview=preview))
                steps.append(f"create-replacement {goal.name}")
                new_state[goal.name] = self._create(goal, props, checked, preview)
            else:
                steps.append(f"create-replacement {goal.name}")
                new_state[goal.name] = self._create(goal, props, checked, preview)
                pending_deletes.append(old)
        # GenerateDeletes: replaced olds and resources no longer in the program, last registered first.
        gone = [s for n, s in self.state.items() if n not in new_state]
        for old in reversed(pending_deletes + gone):
            steps.append(self._delete(old, replacing=old in pending_deletes, preview=preview))
        if not preview:
            self.state = new_state
        return steps

    def _dependent_replacements(self, root: str) -> list[State]:
        """calculateDependentReplacements: each resource whose inputs come from a condemned one is asked Diff with
        those inputs unknown; the ones that would be replaced are deleted before the root (dependents first)."""
        condemned, found = {root}, []
        for state in list(self.state.values())[list(self.state).index(root) + 1:]:
            refs = {k for k, v in state.goal.props.items() if isinstance(v, Ref) and v.name in condemned}
            if not refs:
                continue
            news = {k: UNKNOWN if k in refs else v for k, v in self._plain(state.inputs).items()}
            diff = self._diff(state.name, state.goal.urn, state.id, state.outputs, self._plain(state.inputs), news)
            if diff.replaces:
                condemned.add(state.name)
                found.append(state)
        return list(reversed(found))

    # --- steps -----------------------------------------------------------------------------------------------
    def _check(self, goal: Goal, props: dict[str, Any], olds: dict[str, Any] | None) -> dict[str, Any]:
        response = self._rpc("Check", goal.name, self.host.stub.Check, provider_pb2.CheckRequest(
            urn=goal.urn, olds=struct(self._plain(olds or {})), news=struct(self._plain(props))))
        if response.failures:
            for failure in response.failures:  # issueCheckFailures: the value comes from the program's inputs
                if failure.property:
                    value = props.get(failure.property)
                    shown = value.value if isinstance(value, Secret) else value
                    self.printed.append(f"error: {goal.type} resource '{goal.name}': property {failure.property} "
                                        f"value {shown!r} has a problem: {failure.reason}")
                else:
                    self.printed.append(f"error: {goal.type} resource '{goal.name}' has a problem: {failure.reason}")
            raise EngineError(f"resource {goal.urn} has check errors")
        return plain(response.inputs)

    def _diff(self, name: str, urn_: str, id_: str, old_outputs: dict[str, Any], old_inputs: dict[str, Any],
              news: dict[str, Any]) -> Any:
        return self._rpc("Diff", name, self.host.stub.Diff, provider_pb2.DiffRequest(
            id=id_, urn=urn_, olds=struct(old_outputs), news=struct(news), old_inputs=struct(old_inputs)))

    def _create(self, goal: Goal, props: dict[str, Any], checked: dict[str, Any], preview: bool) -> State:
        if preview:  # provider_plugin.go Create: supportsPreview=false -> the inputs are the would-be outputs
            return State(goal, "", self._remark(props, checked), dict(checked))
        response = self._rpc("Create", goal.name, self.host.stub.Create, provider_pb2.CreateRequest(
            urn=goal.urn, properties=struct(checked)))
        return State(goal, response.id, self._remark(props, checked), plain(response.properties))

    def _update(self, goal: Goal, old: State, props: dict[str, Any], checked: dict[str, Any],
                preview: bool) -> State:
        if preview:
            return State(goal, old.id, self._remark(props, checked), dict(checked))
        response = self._rpc("Update", goal.name, self.host.stub.Update, provider_pb2.UpdateRequest(
            id=old.id, urn=goal.urn, olds=struct(old.outputs), news=struct(checked),
            old_inputs=struct(self._plain(old.inputs))))
        return State(goal, old.id, self._remark(props, checked), plain(response.properties))

    def _delete(self, old: State, *, replacing: bool, preview: bool) -> str:
        step = f"{'delete-replaced' if replacing else 'delete'} {old.name}"
        if old.goal.protect and not replacing:
            self.printed.append(f"error: resource {old.goal.urn!r} cannot be deleted because it is protected")
            raise EngineError(self.printed[-1])
        if preview:
            return step
        if old.goal.retain_on_delete:
            return f"{step} (retained)"
        self._rpc("Delete", old.name, self.host.stub.Delete, provider_pb2.DeleteRequest(
            id=old.id, urn=old.goal.urn, properties=struct(old.outputs), old_inputs=struct(self._plain(old.inputs))))
        return step

    # --- values ----------------------------------------------------------------------------------------------
    def _rpc(self, method: str, name: str, call: Any, request: Any) -> Any:
        self.calls.append(f"{method} {name}")
        try:
            return call(request, timeout=120)
        except Exception as exc:  # a provider error ends the operation, as in the engine
            raise EngineError(f"{method} {name}: {getattr(exc, 'details', lambda: str(exc))()}") from None

    def _resolve(self, props: Mapping[str, Any], new_state: Mapping[str, State], preview: bool) -> dict[str, Any]:
        def value(v: Any) -> Any:
            if isinstance(v, Ref):
                source = new_state[v.name]
                known = source.id and v.prop in source.outputs  # created in a preview: unknown
                return source.outputs[v.prop] if known else UNKNOWN
            return v
        return {k: value(v) for k, v in props.items()}

    @staticmethod
    def _plain(props: Mapping[str, Any]) -> dict[str, Any]:
        """What the provider receives: secrets stripped to plain values (acceptSecrets=false)."""
        return {k: v.value if isinstance(v, Secret) else v for k, v in props.items()}

    @staticmethod
    def _remark(program: Mapping[str, Any], checked: Mapping[str, Any]) -> dict[str, Any]:
        """Stored inputs: secret again where the program's input of that name was (annotateSecrets, by name)."""
        return {k: Secret(v) if isinstance(program.get(k), Secret) else v for k, v in checked.items()}
