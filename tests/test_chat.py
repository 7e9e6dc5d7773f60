"""`liteframe chat VIDEO` driven through a pseudo-terminal, as a person at a terminal uses it (issue 25)."""

import os
import pty
import select
import subprocess
import sys
import time

from liteframe_hf.assets import asset_path

TIMEOUT = 120  # seconds for any one reply (the first includes importing torch and loading the model)


class Terminal:
    """A command running on a pseudo-terminal: `send` types a line, `expect` reads until a text appears."""

    def __init__(self, argv: list[str], env: dict):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its stdin, stdout and stderr
            os.execvpe(argv[0], argv, env)
        self.seen = ""

    def expect(self, text: str, timeout: float = TIMEOUT) -> str:
        """Everything read up to and including `text` (what was read since the last expect)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no {text!r} within {timeout} s; the terminal shows:\n{self.seen}")
            try:
                chunk = os.read(self.fd, 4096).decode(errors="replace")
            except OSError:  # the child closed the terminal
                raise AssertionError(f"the chat ended before {text!r}; the terminal shows:\n{self.seen}") from None
            self.seen += chunk.replace("\r\n", "\n")
        head, _, self.seen = self.seen.partition(text)
        return head + text

    def send(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def wait(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            try:  # keep draining the terminal so the child never blocks on a full buffer
                if select.select([self.fd], [], [], 0.1)[0]:
                    os.read(self.fd, 4096)
            except OSError:
                pass
        os.kill(self.pid, 9)
        raise AssertionError("the chat did not exit")


def test_chat_in_a_terminal_two_questions_frames_and_a_bad_path(tiny_model):
    video = str(asset_path("bikes.mp4"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "dumb", "OMP_NUM_THREADS": "1"}
    term = Terminal([sys.executable, "-m", "liteframe_hf.cli", "chat", video, "--model", str(tiny_model), "--frames", "8",
                     "--max-new-tokens", "4"], env)
    opened = term.expect("you> ")
    assert "at 8 frames" in opened and "video ready: " in opened and "/frames N" in opened

    term.send("what is the rabbit doing ?")
    first = term.expect("you> ")
    assert "model> " in first and "[first token " in first and "pre-filled this turn]" in first
    term.send("how many cars are there ?")
    second = term.expect("you> ")
    assert "[first token " in second
    # the second turn holds the first: more prompt tokens than the first turn had
    tokens = [int(text.split("prompt tokens")[0].split(";")[-1]) for text in (first, second)]
    assert tokens[1] > tokens[0]

    term.send("/frames 4")
    assert "video ready: " in term.expect("you> ")
    term.send("/frames many")
    assert "error: /frames takes a positive whole number" in term.expect("you> ")
    term.send("/video /no/such/video.mp4")
    bad = term.expect("you> ")
    assert "error: cannot read video '/no/such/video.mp4': no such file; still on" in bad
    term.send("/reset")
    assert "history cleared" in term.expect("you> ")
    term.send("what happens ?")
    assert "[first token " in term.expect("you> ")  # still answering, on the same video
    term.send("/quit")
    assert term.wait() == 0


def test_chat_refuses_a_missing_video_before_loading_a_model(tmp_path):
    result = subprocess.run([sys.executable, "-m", "liteframe_hf.cli", "chat", str(tmp_path / "missing.mp4"),
                             "--model", str(tmp_path / "no_model")], capture_output=True, text=True, timeout=TIMEOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert f"liteframe chat: cannot read video '{tmp_path / 'missing.mp4'}': no such file" in result.stderr
