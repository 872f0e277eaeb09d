"""The parameter panel: builds a :class:`TurnRequest` from its rows, or names the bad field."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll

from engine.api import ASPECT_RATIOS, DEFAULT_SIGMA_MAX_I2V, DEFAULT_SIGMA_MAX_T2V, RESOLUTIONS, TurnRequest
from turbo_tui.widgets.panel.fields import (
    ChoiceField,
    ParamField,
    SeedField,
    SliderField,
    TextField,
    ToggleField,
)


class ParamPanel(VerticalScroll):
    """Rows for seed, steps, top-k, sigma_max, frames, samples, size, ODE and the I2V image."""

    DEFAULT_CSS = """
    ParamPanel { height: auto; max-height: 100%; }
    """

    def __init__(self, request: TurnRequest, *, id: str | None = "params") -> None:
        super().__init__(id=id)
        self._initial = request

    def compose(self) -> ComposeResult:
        r = self._initial
        yield SeedField(r.seed)
        yield SliderField("num_steps", r.num_steps, r.num_steps)
        yield SliderField("sla_topk", r.sla_topk, r.sla_topk)
        yield SliderField("sigma_max", r.sigma_max, r.effective_sigma_max,
                          placeholder=f"{r.effective_sigma_max:g} (def)")
        yield TextField("num_frames", r.num_frames, placeholder="4k+1")
        yield TextField("num_samples", r.num_samples)
        yield ChoiceField("resolution", r.resolution, tuple(RESOLUTIONS))
        yield ChoiceField("aspect_ratio", r.aspect_ratio, ASPECT_RATIOS)
        yield ToggleField("ode", r.ode, "ODE (deterministic) instead of SDE")
        yield TextField("image_path", r.image_path, placeholder="none: text to video")
        yield ToggleField("adaptive_resolution", r.adaptive_resolution, "keep the image's aspect ratio")
        yield TextField("boundary", r.boundary)

    # -- reading -----------------------------------------------------------

    def fields(self) -> dict[str, ParamField]:
        return {f.field: f for f in self.query(ParamField)}

    @property
    def seed_field(self) -> SeedField:
        return self.query_one(SeedField)

    def errors(self) -> dict[str, str]:
        return {name: f.error for name, f in self.fields().items() if f.error}

    def build_request(self, prompt: str) -> TurnRequest:
        """The request the panel shows, or :class:`ValidationError` for the first bad row."""
        fields = self.fields()
        for name in TurnRequest.FIELDS:
            f = fields.get(name)
            if f is not None and f.problem is not None:
                raise f.problem
        values: dict[str, Any] = {name: f.value for name, f in fields.items()}
        if values.get("image_path") == "":
            values["image_path"] = None
        return TurnRequest(prompt=prompt, **values).validate()

    # -- writing -----------------------------------------------------------

    def load_request(self, request: TurnRequest) -> None:
        """Show a request's values (a forked or replayed turn)."""
        fields = self.fields()
        for name in TurnRequest.FIELDS:
            if name in fields:
                fields[name].set_value(getattr(request, name))
        self._sync_sigma_default()

    @on(ParamField.Changed, "#field-image_path")
    def _image_changed(self) -> None:
        self._sync_sigma_default()

    def _sync_sigma_default(self) -> None:
        fields = self.fields()
        image = fields["image_path"].value
        default = DEFAULT_SIGMA_MAX_I2V if image else DEFAULT_SIGMA_MAX_T2V
        sigma = fields["sigma_max"]
        assert isinstance(sigma, SliderField)
        sigma.show_default(default)
