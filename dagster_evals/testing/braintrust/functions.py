"""Prompts and functions of the fake Braintrust server, and running them (a mixin of `BraintrustFake`).

Shapes: `CreatePrompt`, `PatchPrompt`, `CreateFunction`, `PatchFunction`, `InvokeApi`, `Prompt` and
`Function` of braintrustdata/braintrust-openapi openapi/spec.json (vendored in `spec/`). Every write is a new
version (`_xact_id`); `version=<xact id>` reads a prompt or function as it was. A prompt read through
`/v1/function` shows its `function_data` (`{"type": "prompt"}`) like any other function.

What runs (see `runtime.py`): python inline code, saved code functions, the autoevals global functions
that need no LLM, and prompts rendered deterministically; prompt sessions are unknown (404), LLM global
functions answer 400.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dagster_evals.testing.asgi import Route
from dagster_evals.testing.braintrust.objects import ObjectRoutes
from dagster_evals.testing.braintrust.runtime import RUNNABLE_GLOBALS, _Fn
from dagster_evals.testing.braintrust.store import HttpError, Obj, now_iso, parse_version


class FunctionRoutes(ObjectRoutes):
    def _function_routes(self) -> list[Route]:
        return [
            Route("POST", "/v1/prompt", self._post_prompt),
            self._versioned_list_route("prompt"),
            Route("GET", "/v1/prompt/{id}", self._get_prompt),
            Route("PATCH", "/v1/prompt/{id}", self._patch_prompt),
            Route("DELETE", "/v1/prompt/{id}", self._delete_prompt),
            Route("POST", "/v1/function", self._post_function),
            self._versioned_list_route("function"),
            Route("GET", "/v1/function/{id}", self._get_function),
            Route("PATCH", "/v1/function/{id}", self._patch_function_route),
            Route("POST", "/v1/function/{id}/invoke", self._invoke),
        ]

    def _versioned_list_route(self, kind: str) -> Route:
        return Route(
            "GET", f"/v1/{kind}", lambda request, body: self._list_functions(request, kind, f"{kind}_name")
        )

    # -- routes --------------------------------------------------------------------------------------------
    def _post_prompt(self, request: Request, body: Any) -> dict:
        data = dict(self._validate("CreatePrompt", body))
        data.pop("environment_slugs", None)
        return self._create_function("prompt", data, {"type": "prompt"})

    def _get_prompt(self, request: Request, body: Any, prompt_id: str) -> dict:
        return self._function_at(self._get("prompt", prompt_id), request.query_params.get("version"))

    def _patch_prompt(self, request: Request, body: Any, prompt_id: str) -> dict:
        return self._patch_function("prompt", prompt_id, dict(self._validate("PatchPrompt", body)))

    def _delete_prompt(self, request: Request, body: Any, prompt_id: str) -> dict:
        with self.lock:
            prompt = self._get("prompt", prompt_id)
            prompt.data["deleted_at"] = now_iso()
            return self._function_at(prompt, None)

    def _post_function(self, request: Request, body: Any) -> dict:
        data = dict(self._validate("CreateFunction", body))
        return self._create_function("function", data, data.pop("function_data"))

    def _get_function(self, request: Request, body: Any, function_id: str) -> dict:
        obj = self._function_obj(function_id)
        return self._function_at(obj, request.query_params.get("version"), as_function=True)

    def _patch_function_route(self, request: Request, body: Any, function_id: str) -> dict:
        req = self._validate("PatchFunction", body)
        kind = self._function_obj(function_id).kind
        return self._patch_function(kind, function_id, dict(req))

    async def _invoke(self, request: Request, body: Any, function_id: str) -> Response:
        req = self._validate("InvokeApi", body or {})
        with self.lock:
            obj = self._function_obj(function_id)
            spec = self._function_at(obj, req.version)
            fn = self._callable_from_data(self._function_data(obj, spec), spec)
        value = await asyncio.to_thread(
            fn.call, input=req.input, output=None, expected=req.expected, metadata=req.metadata or {}
        )
        if req.stream:
            payload = f"event: json_delta\ndata: {json.dumps(value)}\n\nevent: done\ndata: \n\n"
            return Response(payload, media_type="text/event-stream")
        return Response(json.dumps(value), media_type="application/json")

    # -- versions ------------------------------------------------------------------------------------------
    def _create_function(self, kind: str, data: dict[str, Any], function_data: dict[str, Any]) -> dict:
        with self.lock:
            self._get("project", data["project_id"])
            for existing in self._live("prompt") + self._live("function"):
                if (
                    existing.data["project_id"] == data["project_id"]
                    and existing.data["slug"] == data["slug"]
                ):
                    return self._function_at(existing, None)
            xact = self._next_xact()
            state = {
                "id": str(uuid.uuid4()),
                "project_id": data["project_id"],
                "org_id": self.org_id,
                "log_id": "p",
                "name": data["name"],
                "slug": data["slug"],
                "description": data.get("description"),
                "created": now_iso(),
                "prompt_data": data.get("prompt_data"),
                "tags": data.get("tags"),
                "metadata": None,
                "function_type": data.get("function_type"),
                "function_data": function_data,
                "function_schema": data.get("function_schema"),
                "origin": data.get("origin"),
            }
            obj = self._new(
                kind, {"id": state["id"], "project_id": state["project_id"], "slug": data["slug"]}
            )
            obj.versions.append((xact, state))
            return self._function_at(obj, None)

    def _function_obj(self, function_id: str) -> Obj:
        for kind in ("function", "prompt"):
            obj = self.objects[kind].get(function_id)
            if obj is not None and not obj.data.get("deleted_at"):
                return obj
        raise HttpError(404, f"function {function_id} not found")

    def _patch_function(self, kind: str, object_id: str, changes: dict[str, Any]) -> dict:
        with self.lock:
            obj = self._get(kind, object_id)
            state = {**obj.versions[-1][1], **changes}
            obj.versions.append((self._next_xact(), state))
            obj.data["slug"] = state["slug"]
            return self._function_at(obj, None)

    def _function_at(self, obj: Obj, version: str | None, as_function: bool = False) -> dict[str, Any]:
        """The prompt/function as of `version`; a prompt read through /v1/function shows its
        `function_data` ({"type": "prompt"}) like any other function."""
        at = parse_version(version) if version else None
        chosen = None
        for xact, state in obj.versions:
            if at is None or xact <= at:
                chosen = (xact, state)
        if chosen is None:
            raise HttpError(404, f"{obj.kind} {obj.id} has no version at or before {version}")
        out = {**chosen[1], "_xact_id": str(chosen[0])}
        if obj.kind == "prompt" and not as_function:
            out.pop("function_data", None)
            out.pop("function_schema", None)
            out.pop("origin", None)
        return out

    def _list_functions(self, request: Request, kind: str, name_param: str) -> dict:
        query = request.query_params
        if query.get("environment") and query.get("version"):
            raise HttpError(400, "pass only one of version and environment")
        kinds = ("prompt",) if kind == "prompt" else ("prompt", "function")
        items = sorted((o for k in kinds for o in self._live(k)), key=lambda o: -o.seq)

        def state(o: Obj) -> dict[str, Any]:
            return o.versions[-1][1]

        filters: dict[str, Callable[[Obj], bool]] = {
            name_param: lambda o: state(o)["name"] == query[name_param],
            "slug": lambda o: state(o)["slug"] == query["slug"],
            "project_id": lambda o: o.data["project_id"] == query["project_id"],
            "project_name": lambda o: (
                self._get("project", o.data["project_id"]).data["name"] == query["project_name"]
            ),
        }
        for name, test in filters.items():
            if name in query:
                items = [o for o in items if test(o)]
        version = query.get("version")
        if version:
            at = parse_version(version)
            items = [o for o in items if o.versions[0][0] <= at]
        page = self._page_of(request, items)
        return {"objects": [self._function_at(o, version, as_function=kind == "function") for o in page]}

    # -- running functions ----------------------------------------------------------------------
    def _callable_from_ref(self, ref: Any) -> _Fn:
        if "function_id" in ref:
            obj = self._function_obj(ref.function_id)
            spec = self._function_at(obj, ref.version)
            return self._callable_from_data(self._function_data(obj, spec), spec)
        if "project_name" in ref:
            project = self._project_by_name(ref.project_name)
            for obj in self._live("prompt") + self._live("function"):
                if obj.data["project_id"] == project.id and obj.data["slug"] == ref.slug:
                    spec = self._function_at(obj, ref.version)
                    return self._callable_from_data(self._function_data(obj, spec), spec)
            raise HttpError(404, f"function {ref.slug!r} not found in project {ref.project_name!r}")
        if "global_function" in ref:
            return self._global(ref.global_function)
        if "prompt_session_id" in ref:
            raise HttpError(404, f"prompt session {ref.prompt_session_id} not found")
        if "code" in ref:
            if ref.inline_context.runtime != "python":
                raise HttpError(
                    400, f"the fake runs python inline code only, not {ref.inline_context.runtime}"
                )
            return _Fn.from_code(ref.code, ref.name or "inline_code")
        if "inline_function" in ref:
            spec = {"name": ref.name or "inline_function", "prompt_data": ref.inline_prompt}
            return self._callable_from_data(ref.inline_function, spec)
        assert "inline_prompt" in ref
        return _Fn.from_prompt(ref.inline_prompt, ref.name or "inline_prompt")

    @staticmethod
    def _function_data(obj: Obj, spec: dict[str, Any]) -> dict[str, Any]:
        return obj.versions[-1][1]["function_data"] if obj.kind == "prompt" else spec["function_data"]

    def _global(self, name: str) -> _Fn:
        if name not in RUNNABLE_GLOBALS:
            raise HttpError(
                400,
                f"global function {name!r} needs a model provider; the fake runs {sorted(RUNNABLE_GLOBALS)}",
            )

        def score(input: Any, output: Any, expected: Any, metadata: dict) -> Any:
            import autoevals

            return getattr(autoevals, RUNNABLE_GLOBALS[name])()(output=output, expected=expected)

        return _Fn(name, score, ("input", "output", "expected", "metadata"))

    def _callable_from_data(self, function_data: dict[str, Any], spec: dict[str, Any]) -> _Fn:
        kind = function_data.get("type")
        name = spec.get("name") or "function"
        if kind == "code":
            data = function_data.get("data") or {}
            runtime = (data.get("runtime_context") or {}).get("runtime")
            if data.get("type") != "inline" or runtime != "python":
                raise HttpError(400, "the fake runs inline python code functions only")
            return _Fn.from_code(data["code"], name)
        if kind == "global":
            return self._global(function_data.get("name", ""))
        if kind == "prompt":
            return _Fn.from_prompt(spec.get("prompt_data") or {}, name)
        raise HttpError(400, f"the fake cannot run functions of type {kind!r}")
