"""Triton kernels (placeholder until issue 3 lands them)."""


def available() -> bool:
    return False


def unavailable_reason() -> str:
    return "Triton kernels are not written yet"
