"""Push-to-talk coaching: record in the browser, transcribe with a local speech-to-text model.

Hidden unless a model is configured (`hearth console --stt-model PATH_OR_NAME`) and a local engine is installed
(faster-whisper); nothing is ever sent to a cloud service. Transcription returns the text, which is then sent
like typed coaching.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
from functools import cache

import streamlit as st

from ui.settings import ConsoleSettings

logger = logging.getLogger(__name__)


def available(settings: ConsoleSettings) -> bool:
    return bool(settings.stt_model) and importlib.util.find_spec("faster_whisper") is not None


@cache
def _model(name: str):
    from faster_whisper import WhisperModel

    return WhisperModel(name, device="cpu", compute_type="int8", local_files_only=True)


def transcribe(settings: ConsoleSettings, audio: bytes) -> str:
    segments, _info = _model(settings.stt_model).transcribe(io.BytesIO(audio), language="en")
    return " ".join(segment.text.strip() for segment in segments).strip()


def push_to_talk(settings: ConsoleSettings) -> str | None:
    recording = st.audio_input("Push to talk", key="coach_voice")
    if recording is None:
        return None
    audio = recording.getvalue()
    digest = hashlib.sha256(audio).hexdigest()
    if st.session_state.get("coach_voice_done") == digest:  # the widget keeps its clip across reruns
        return None
    st.session_state["coach_voice_done"] = digest
    try:
        text = transcribe(settings, audio)
    except Exception as exc:  # a broken local model must not take the coaching box down
        logger.warning("speech-to-text failed", exc_info=True)
        st.error(f"Speech-to-text failed: {exc}")
        return None
    st.caption(f"Heard: “{text}”")
    return text or None
