"""Where the launcher keeps its state: ``$BOURSE_HOME``, by default ``<repo>/.bourse``.

```
.bourse/
  state.json          what ``bourse up`` / ``bourse infra`` resolved (URLs, embedded or not)
  data/{postgres,redis,nats}/   the embedded servers' data, kept across restarts
  logs/<name>.log     one log per part and per embedded server
  run/<name>.pid      pids of the processes this launcher started
  run/supervisor.json what the supervisor keeps alive (parts' environments: private)
  run/supervision.json          restarts, last exits, given-up parts (``bourse status``)
  keys/jwt-signing.pem          the gateway's signing key (development)
```
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Home:
    """The launcher's folder and the well-known paths inside it."""

    root: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Home:
        env = os.environ if environ is None else environ
        configured = env.get("BOURSE_HOME")
        root = Path(configured).expanduser() if configured else REPO_ROOT / ".bourse"
        return cls(root.resolve())

    def data(self, name: str) -> Path:
        return self.root / "data" / name

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.root / "run" / f"{name}.pid"

    @property
    def supervisor_spec(self) -> Path:
        return self.root / "run" / "supervisor.json"

    @property
    def supervision_file(self) -> Path:
        return self.root / "run" / "supervision.json"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def signing_key(self) -> Path:
        return self.root / "keys" / "jwt-signing.pem"

    def prepare(self) -> None:
        """Create the folders (not the data folders: their owner may differ)."""
        for sub in ("logs", "run", "keys", "data"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            # Data, logs and keys of one machine never belong in the repository.
            ignore.write_text("*\n")

    def read_state(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.state_file.read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        self.prepare()
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", "utf-8")
        tmp.replace(self.state_file)
