"""Typed errors: each says what went wrong, where, and what to do; the CLI maps them to exit codes."""

from __future__ import annotations


class MokaError(Exception):
    """Base of every error moka-images raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(MokaError):
    """Bad settings, manifests or policies; always names the file and field."""

    exit_code = 2


class ValidationProblem:
    """One problem in one file: file, dotted field path, message, optional fix and line (1-based, where known)."""

    __slots__ = ("field", "file", "fix", "line", "message")

    def __init__(self, file: str, field: str, message: str, fix: str | None = None, line: int | None = None) -> None:
        self.file, self.field, self.message, self.fix, self.line = file, field, message, fix, line

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        where = f"{where}: {self.field}" if self.field else where
        return f"{where}: {self.message}" + (f" ({self.fix})" if self.fix else "")

    def __repr__(self) -> str:
        return f"ValidationProblem({str(self)!r})"


class ManifestError(ConfigError):
    """Every problem found in a set of manifests or policies, reported at once."""

    def __init__(self, problems: list[ValidationProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the declarations:\n{lines}")


class ToolMissingError(MokaError):
    """An external tool is absent or too old."""

    exit_code = 3


class ServiceError(MokaError):
    """A service (docker engine, registry, moto) is down or refused us."""

    exit_code = 4


class CommandFailed(MokaError):
    """An external command exited non-zero."""

    exit_code = 5

    def __init__(self, argv: list[str], returncode: int, output_tail: str, hint: str | None = None) -> None:
        self.argv, self.returncode, self.output_tail = argv, returncode, output_tail
        shown = " ".join(argv[:6]) + (" ..." if len(argv) > 6 else "")
        super().__init__(f"`{shown}` exited {returncode}:\n{output_tail}", hint)


class PlanRefused(MokaError):
    """The plan itself refuses a change (version not bumped, gate failed, ...)."""

    exit_code = 6


class GateFailed(PlanRefused):
    """A promotion or policy gate said no; nothing was changed."""

    exit_code = 7
