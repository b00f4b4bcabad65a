# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of mailseal's integration tests.

Every test gets its own directory under /tmp (removed afterwards) and starts its own processes:
`mailseal serve` (class Mailseal), a throwaway Postfix (class Postfix) or a throwaway Dovecot
(class Dovecot), all on loopback. Nothing waits a fixed time: every wait polls a condition
against a deadline and fails the test with the relevant log when the deadline passes.
"""

import base64
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest

MAILSEAL_BIN = os.environ.get("MAILSEAL_BIN", "")
# The tests run as root and own every directory they make; `serve` started as root without
# server.user refuses to run unless told this is a test rig (test_privileges.py checks both).
ROOT_FLAG = ["--allow-root"] if os.geteuid() == 0 else []
DOMAIN = "example.org"
SENDER = "sender@remote.example"
HOSTNAME = "mx.test.example"

# How long any single wait may take before the test fails instead of hanging.
START_TIMEOUT = 10.0
REPLY_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 30.0


class HarnessError(AssertionError):
    """A wait timed out or a helper process misbehaved; the message carries its log."""


def wait_until(predicate, timeout, what, interval=0.01, diagnostics=None):
    """Polls predicate() until it returns a true value, which is returned.

    Raises HarnessError naming `what` (and the output of diagnostics(), if given) when
    `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = ""
            if diagnostics is not None:
                extra = "\n" + diagnostics()
            raise HarnessError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


# --- temporary directories and mounts ---------------------------------------------------------


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_test_dir():
    """A fresh directory under /tmp, mode 755 so that Postfix and Dovecot daemons running as
    unprivileged users can traverse it."""
    path = tempfile.mkdtemp(prefix="mailseal-it-", dir="/tmp")
    os.chmod(path, 0o755)
    return path


def mounts_under(path):
    """Mount points at or below path, deepest first (so they can be unmounted in order)."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            target = line.split()[1].replace("\\040", " ")
            if target == prefix or target.startswith(prefix + "/"):
                found.append(target)
    return sorted(found, key=len, reverse=True)


def remove_test_dir(path):
    """Unmounts whatever a test mounted below path (lazily: a daemon may still hold a file
    there), then removes the tree."""
    for target in mounts_under(path):
        subprocess.run(["umount", "-l", target], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(path, ignore_errors=True)


def bind_dns_sockets(what):
    """A TCP and a UDP socket bound to the same free port on 127.0.0.1, as a DNS server needs
    (the TCP one not yet listening), and the port; raises HarnessError naming `what` when no
    port is free for both."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            tcp.close()
            udp.close()
            continue
        return tcp, udp, port
    raise HarnessError(what)


def mount_tmpfs(target, size):
    """Mounts a tmpfs of `size` on target; returns None on success or why it failed."""
    os.makedirs(target, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           target],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        return proc.stdout.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
    return None


def remount_read_only(target):
    proc = subprocess.run(["mount", "-o", "remount,ro", target],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        return proc.stdout.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
    return None


def mounting_possible():
    """None if tmpfs mounts work here (root, a kernel and container that allow them), else the
    reason, for skipTest."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    probe = tempfile.mkdtemp(prefix="mailseal-it-mountprobe-", dir="/tmp")
    try:
        reason = mount_tmpfs(probe, "16k")
        if reason is None:
            subprocess.run(["umount", probe], check=False)
        return reason
    finally:
        shutil.rmtree(probe, ignore_errors=True)


# --- processes ----------------------------------------------------------------------------------


def stop_process(proc, timeout=5.0):
    """SIGTERM, then SIGKILL if it has not exited after `timeout`; always reaps it."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=timeout)


def process_is(pid, command):
    """True while pid is a live (not zombie) process whose command line mentions `command`.

    Checked before every signal sent by pid number: pids are reused quickly on a busy machine,
    and a stale pid file must never make a test signal someone else's process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return command.encode() in f.read()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def stop_pid(pid, command, timeout=5.0):
    """Stops a process this test started but is not the parent of (a daemon that forked),
    provided pid still is that process (see process_is)."""
    if not process_is(pid, command):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_is(pid, command):
            return
        time.sleep(0.02)
    if process_is(pid, command):
        os.kill(pid, signal.SIGKILL)


def run_to_file(args, out_path, stdin=None, timeout=30):
    """Runs a command whose daemons may inherit its stdout: output goes to a file (appended),
    never to a pipe this process would wait on. Returns (CompletedProcess, this run's output)."""
    with open(out_path, "ab") as out:
        start = out.tell()
        proc = subprocess.run(list(args), input=stdin,
                              stdin=None if stdin is not None else subprocess.DEVNULL,
                              stdout=out, stderr=out, timeout=timeout, start_new_session=True)
    with open(out_path, "rb") as f:
        f.seek(start)
        output = f.read().decode("utf-8", "replace")
    return proc, output


# --- TOML -------------------------------------------------------------------------------------


class Octal(int):
    """An integer written in TOML's octal form (file modes: mailseal wants 0o660, not 432)."""


def toml_value(value):
    if isinstance(value, Octal):
        return f"0o{value:o}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(config):
    """config: {section: {key: value}} or {section: [{key: value}, ...]} (array of tables)."""
    out = []
    for section, body in config.items():
        tables = body if isinstance(body, list) else [body]
        for table in tables:
            out.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            for key, value in table.items():
                out.append(f"{key} = {toml_value(value)}")
            out.append("")
    return "\n".join(out)


# --- logfmt ---------------------------------------------------------------------------------------

_LOGFMT_PAIR = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    fields = {}
    for key, value in _LOGFMT_PAIR.findall(line):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        fields[key] = value
    return fields


# --- Maildir ------------------------------------------------------------------------------------

MAILDIR_NAME = re.compile(
    r"^(?P<secs>\d+)\.M(?P<usecs>\d+)P(?P<pid>\d+)Q(?P<n>\d+)\.(?P<host>[^,/:]+)"
    r",S=(?P<S>\d+),W=(?P<W>\d+)$")


def insecure_unbound_conf(directory, domains):
    """An unbound.conf that answers every lookup for the mail domains at once, unsigned.

    Tests about LMTP and Maildir need key discovery to end quickly in "no key": a static local
    zone gives libunbound's real insecure answer (NXDOMAIN without DNSSEC), so mail is stored
    as received (or sealed to a local-store key). Tests about DNS keys use dnsbed.py's zones.
    """
    path = os.path.join(directory, "unbound-insecure.conf")
    with open(path, "w") as f:
        f.write("server:\n")
        for domain in domains:
            f.write(f'    local-zone: "{domain}." static\n')
    return path


def add_to_local_store(store, address, key_path, name=None, extension=".pem"):
    """Files a PEM certificate (or, with extension ".asc" or ".pgp", an OpenPGP key) for
    `address` in a local key store (docs/keys.md: <store>/<domain>/<user>/*.pem); returns the
    file's path."""
    local, domain = address.rsplit("@", 1)
    user_dir = os.path.join(store, domain.lower(), local)
    os.makedirs(user_dir, exist_ok=True)
    path = os.path.join(user_dir, (name or local) + extension)
    shutil.copyfile(key_path, path)
    return path


def parse_log_line(line):
    """The fields of one log line, logfmt or JSON ([log] format)."""
    if line.startswith("{"):
        try:
            return json.loads(line)
        except ValueError:
            return {}
    return parse_logfmt(line)


def maildir_files(maildir, sub="new"):
    """Sorted full paths of the entries of maildir/sub (empty if it does not exist)."""
    folder = os.path.join(maildir, sub)
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if not n.startswith("."))


def size_fields(path):
    """(S, W) from a Maildir file name; None for a field that is missing."""
    name = os.path.basename(path).split(":", 1)[0]
    s = re.search(r",S=(\d+)", name)
    w = re.search(r",W=(\d+)", name)
    return (int(s.group(1)) if s else None, int(w.group(1)) if w else None)


def crlf_size(data):
    """Size of data with every LF written as CRLF (what Maildir's W= records)."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def base64_forms(data):
    """What to search for to find `data` base64-encoded anywhere: its base64 text at each of the
    three alignments it can have in a longer input, without the characters at either end that
    depend on the octets around it. Search with files_containing(..., unfold=True), since
    base64 comes in lines."""
    forms = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data)
        first = -(-8 * shift // 6)               # the first character made of data's bits only
        last = 8 * (shift + len(data)) // 6      # one past the last such character
        forms.append(encoded[first:last])
    return forms


def resident_bytes(path):
    """How much of the file the page cache holds (util-linux fincore)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def files_containing(roots, needles, unfold=False):
    """Paths of the regular files under any of `roots` that hold any of `needles` (bytes, or a
    list of them), read in blocks so that a 100 MB file costs no 100 MB of memory. Symbolic
    links are not followed. unfold=True matches across line ends too (CR and LF are dropped
    before comparing), for text that base64 or armour may have broken into lines."""
    if isinstance(needles, bytes):
        needles = [needles]
    overlap = max(len(n) for n in needles)
    found = []
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                with open(path, "rb") as f:
                    tail = b""
                    while block := f.read(1 << 20):
                        if unfold:
                            block = block.replace(b"\r", b"").replace(b"\n", b"")
                        window = tail + block
                        if any(n in window for n in needles):
                            found.append(path)
                            break
                        tail = window[-overlap:]
    return found


def split_trace_headers(stored, sent):
    """Checks that `stored` (a Maildir file) is trace headers followed by `sent` with CRLF
    turned into LF, and returns the trace header lines (folded lines joined)."""
    body = sent.replace(b"\r\n", b"\n")
    if not stored.endswith(body):
        raise AssertionError(
            f"stored file does not end with the message sent (CRLF->LF):\n"
            f"stored={stored[:2000]!r}\nsent={body[:2000]!r}")
    prefix = stored[: len(stored) - len(body)]
    if not prefix.endswith(b"\n"):
        raise AssertionError(f"trace headers not ended by LF: {prefix!r}")
    headers = []
    for line in prefix[:-1].split(b"\n"):
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += b"\n" + line
        else:
            headers.append(line)
    return headers


# --- mailseal -----------------------------------------------------------------------------------


class Mailseal:
    """One `mailseal serve` process with a configuration written from defaults plus overrides.

    overrides: {section: {key: value}} merged into the defaults; `listen` (a list of tables)
    replaces the default listeners (one TCP listener on 127.0.0.1:0 and one unix socket).
    """

    def __init__(self, workdir, overrides=None, env=None, user=None):
        if not MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
        self.workdir = workdir
        self.vmail = os.path.join(workdir, "vmail")
        self.socket_path = os.path.join(workdir, "mailseal.sock")
        self.config_path = os.path.join(workdir, "mailseal.toml")
        self.log_path = os.path.join(workdir, "mailseal.log")
        os.makedirs(self.vmail, mode=0o755, exist_ok=True)
        if user is not None:
            # As the package does for its service user: the mail root is the user's, and
            # mailseal, started as root, binds its listeners and then runs as that user.
            shutil.chown(self.vmail, user, user)
        config = {
            "server": {"hostname": HOSTNAME, "workers": 2},
            "listen": [{"tcp": "127.0.0.1:0"},
                       {"unix": self.socket_path, "mode": Octal(0o666)}],
            "mailbox": {"domains": [DOMAIN],
                        "maildir": os.path.join(self.vmail, "%d", "%n", "Maildir"),
                        "on_missing": "create"},
            "limits": {},
            "log": {"level": "info"},
        }
        if user is not None:
            config["server"] = {**config["server"], "user": user, "group": user}
        for section, values in (overrides or {}).items():
            if isinstance(values, list) or section not in config:
                config[section] = values
            else:
                config[section] = {**config[section], **values}
        if "dns" not in config:
            config["dns"] = {
                "unbound_conf": insecure_unbound_conf(self.workdir, config["mailbox"]["domains"])}
        self.config = config
        with open(self.config_path, "w") as f:
            f.write(to_toml(config))
        self.env = {**os.environ, **(env or {})}
        self.proc = None
        self.port = None
        self.unix_path = None

    def maildir(self, local, domain=DOMAIN):
        return os.path.join(self.vmail, domain, local, "Maildir")

    def log(self):
        return read_text(self.log_path)

    def log_since(self, offset):
        """The log from byte `offset` on (what a later start() wrote)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self):
        state = "running" if self.proc and self.proc.poll() is None else (
            f"exited {self.proc.returncode}" if self.proc else "not started")
        return f"mailseal ({state}) log:\n{tail(self.log())}\nconfig:\n{to_toml(self.config)}"

    def start(self, root_flag=True):
        """Starts `serve`; root_flag=False starts it as a service manager would, without
        --allow-root."""
        log = open(self.log_path, "ab")
        # A restart appends to the same log: only this start's listening lines count.
        offset = log.tell()
        try:
            self.proc = subprocess.Popen(
                [MAILSEAL_BIN, "serve", "--config", self.config_path,
                 *(ROOT_FLAG if root_flag else [])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                env=self.env)
        finally:
            log.close()
        expected = len(self.config["listen"])

        def listening():
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"mailseal exited with {self.proc.returncode} before listening\n"
                    + self.diagnostics())
            lines = [parse_log_line(l) for l in self.log_since(offset).splitlines()]
            lines = [f for f in lines if f.get("event") == "listening"]
            return lines if len(lines) >= expected else None

        for fields in wait_until(listening, START_TIMEOUT, "event=listening",
                                 diagnostics=self.diagnostics):
            listener = fields.get("listener", "")
            if listener.startswith("tcp:"):
                self.port = int(listener.rsplit(":", 1)[1])
            elif listener.startswith("unix:"):
                self.unix_path = listener[len("unix:"):]
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)

    def kill(self):
        """SIGKILL, as a crash ends it: none of its own cleanup runs. Reaps it."""
        self.proc.kill()
        self.proc.wait()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def delivery_events(self):
        events = [parse_log_line(l) for l in self.log().splitlines()]
        return [e for e in events if e.get("event") == "delivery"]

    # Clients

    def raw(self, unix=False, greet=True):
        client = RawLMTP(self.unix_path if unix else ("127.0.0.1", self.port))
        if greet:
            reply = client.reply()
            if reply.code != 220:
                client.close()
                raise HarnessError(f"greeting: got {reply}, want 220\n" + self.diagnostics())
        return client

    def lmtp_client(self, unix=False):
        """A connected smtplib.LMTP (greeting read, no LHLO yet)."""
        if unix:
            return smtplib.LMTP(self.unix_path, timeout=REPLY_TIMEOUT)
        return smtplib.LMTP("127.0.0.1", self.port, timeout=REPLY_TIMEOUT)


# --- a raw LMTP client --------------------------------------------------------------------------


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines  # text after "NNN-" / "NNN "

    @property
    def enhanced(self):
        m = re.match(r"(\d\.\d{1,3}\.\d{1,3})(?: |$)", self.lines[0])
        return m.group(1) if m else None

    def __repr__(self):
        return " / ".join(f"{self.code} {l}" for l in self.lines)


class ConnectionClosed(AssertionError):
    pass


class RawLMTP:
    """A byte-level client: send exactly what a test says, read replies one at a time."""

    def __init__(self, address, timeout=REPLY_TIMEOUT):
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(address)
        except OSError:
            self.sock.close()
            raise
        self.buffer = b""
        self.timeout = timeout

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise HarnessError(f"no reply within {self.sock.gettimeout()}s; "
                                   f"buffered {self.buffer!r}") from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed(f"connection closed; buffered {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        lines = []
        while True:
            line = self._line()
            if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
                raise AssertionError(f"malformed reply line {line!r}")
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return Reply(int(line[:3]), lines)

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def command(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def lhlo(self, name="client.test.example"):
        return self.command(f"LHLO {name}")

    def transaction(self, sender, recipients, body, mail_params=""):
        """One pipelined transaction (MAIL, RCPT..., DATA in one send; the body after 354).

        Returns a Transaction with the MAIL reply, the RCPT replies, the DATA reply and the
        replies after the final dot (one per accepted RCPT, RFC 2033 §4.2)."""
        commands = f"MAIL FROM:<{sender}>{mail_params}\r\n"
        commands += "".join(f"RCPT TO:<{r}>\r\n" for r in recipients)
        commands += "DATA\r\n"
        self.send(commands)
        mail = self.reply()
        rcpts = self.replies(len(recipients))
        data = self.reply()
        finals = []
        if data.code == 354:
            self.send(dot_stuff(body))
            finals = self.replies(sum(1 for r in rcpts if 200 <= r.code < 300))
        return Transaction(mail, rcpts, data, finals)

    def closed_by_peer(self, timeout=REPLY_TIMEOUT):
        """True once the server has closed the connection (EOF), draining any data."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


class Transaction:
    def __init__(self, mail, rcpts, data, finals):
        self.mail = mail
        self.rcpts = rcpts
        self.data = data
        self.finals = finals

    def __repr__(self):
        return (f"MAIL: {self.mail!r}; RCPT: {self.rcpts!r}; DATA: {self.data!r}; "
                f"after dot: {self.finals!r}")


def dot_stuff(body):
    """body (CRLF lines) as DATA sends it: leading dots doubled, ended by CRLF.CRLF."""
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    stuffed = re.sub(rb"(?m)^\.", b"..", body)
    return stuffed + b".\r\n"


def message(subject="test", body=b"Hello.\r\n", extra_headers=b""):
    """A message as a client sends it (CRLF line ends), with a unique Message-ID."""
    return (b"From: <" + SENDER.encode() + b">\r\n"
            + b"Subject: " + subject.encode() + b"\r\n"
            + b"Message-ID: <" + str(time.time_ns()).encode() + b"@remote.example>\r\n"
            + extra_headers + b"\r\n" + body)


# --- Postfix ------------------------------------------------------------------------------------


class Postfix:
    """A throwaway Postfix instance routing DOMAIN to `transport` (lmtp:unix:/abs/path,
    lmtp:inet:127.0.0.1:PORT, or a master.cf service given in `extra_master` lines); no SMTP
    listener, loopback only, logging to its own file."""

    def __init__(self, workdir, transport, extra_main=None, extra_master=()):
        self.base = os.path.join(workdir, "postfix")
        self.config_dir = os.path.join(self.base, "etc")
        self.queue_dir = os.path.join(self.base, "queue")
        self.data_dir = os.path.join(self.base, "data")
        self.log_path = os.path.join(self.base, "maillog")
        for d in (self.base, self.config_dir, self.queue_dir, self.data_dir):
            os.makedirs(d, mode=0o755, exist_ok=True)
            os.chmod(d, 0o755)
        postfix_user = "postfix"
        shutil.chown(self.data_dir, postfix_user)
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": postfix_user,
            "setgid_group": "postdrop",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "myhostname": "postfix.test.example",
            "mydomain": "test.example",
            "myorigin": "$mydomain",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "",
            "relay_domains": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "virtual_mailbox_domains": DOMAIN,
            "virtual_transport": transport,
            # Loopback only: bounces to the (fake) sender domain go nowhere.
            "default_transport": "error:outbound mail is disabled in this test",
            "relay_transport": "error:outbound mail is disabled in this test",
            "smtputf8_enable": "yes",
            "maillog_file": self.log_path,
            "maillog_file_prefixes": f"/var, /dev/stdout, {self.base}",
            "biff": "no",
            "append_dot_mydomain": "no",
            "notify_classes": "",
            # Retry deferred mail quickly if a test flushes the queue.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "bounce_queue_lifetime": "0",
        }
        main.update(extra_main or {})
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            for key, value in main.items():
                f.write(f"{key} = {value}\n")
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(self._master_cf() + "".join(line + "\n" for line in extra_master))
        self.started = False

    @staticmethod
    def _master_cf():
        """Debian's master.cf with `smtp inet` disabled and every chroot column set to n: the
        throwaway queue directory has none of the etc/ and lib/ copies a chroot needs, and a
        chrooted lmtp client would look for an absolute unix socket path inside it. The lmtp
        entry gets flags=X: mailseal is the final delivery agent."""
        out = []
        with open("/etc/postfix/master.cf") as f:
            for line in f:
                fields = line.split()
                if line.startswith("#") or not line.strip() or line[0].isspace():
                    out.append(line)
                    continue
                if fields[0] == "smtp" and fields[1] == "inet":
                    out.append("#" + line)
                    continue
                if len(fields) >= 8:
                    fields[4] = "n"
                    if fields[0] == "lmtp" and fields[7] == "lmtp":
                        # Final delivery: without it Postfix reports "relayed" because the
                        # server does not announce DSN (lmtp_assume_final's successor).
                        fields.append("flags=X")
                    line = " ".join(fields) + "\n"
                out.append(line)
        return "".join(out)

    def _run(self, *args, check=True, stdin=None, timeout=30):
        proc, output = run_to_file(args, os.path.join(self.base, "commands.out"), stdin, timeout)
        if check and proc.returncode != 0:
            raise HarnessError(f"{' '.join(args)} exited {proc.returncode}: {output}\n"
                               + self.diagnostics())
        return proc

    def diagnostics(self):
        return f"postfix log ({self.log_path}):\n{tail(read_text(self.log_path))}"

    def start(self):
        self._run("postfix", "-c", self.config_dir, "start")
        self.started = True
        return self

    def stop(self):
        if not self.started:
            return
        self.started = False
        self._run("postfix", "-c", self.config_dir, "stop", check=False)
        pid_file = os.path.join(self.queue_dir, "pid", "master.pid")

        def master_gone():
            try:
                pid = int(read_text(pid_file).strip() or 0)
            except ValueError:
                return True
            if not pid:
                return True
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split()[2] == "Z"

        try:
            wait_until(master_gone, 10, "postfix master to exit")
        except HarnessError:
            pid = int(read_text(pid_file).strip())
            stop_pid(pid, "master")

    def flush(self):
        self._run("postfix", "-c", self.config_dir, "flush")

    def sendmail(self, sender, recipients, data):
        """Submits data (bytes, LF or CRLF lines) with sendmail -C. A UTF-8 address makes it
        an SMTPUTF8 message (smtputf8_autodetect_classes includes sendmail by default)."""
        self._run("sendmail", "-C", self.config_dir, "-i", "-f", sender, "--", *recipients,
                  stdin=data)

    def log(self):
        return read_text(self.log_path)

    def statuses(self, recipient):
        """Delivery log entries (dict of to, status, dsn, relay, text) for recipient."""
        found = []
        for line in self.log().splitlines():
            m = re.search(r"\bto=<([^>]*)>.*?\bdsn=([0-9.]+), status=(\w+) \((.*)\)$", line)
            if m and m.group(1) == recipient:
                relay = re.search(r"\brelay=([^,]*)", line)
                found.append({"to": m.group(1), "dsn": m.group(2), "status": m.group(3),
                              "text": m.group(4), "relay": relay.group(1) if relay else "",
                              "line": line})
        return found

    def wait_status(self, recipient, statuses=("sent", "deferred", "bounced"),
                    timeout=DELIVERY_TIMEOUT):
        def final():
            for entry in self.statuses(recipient):
                if entry["status"] in statuses:
                    return entry
            return None

        return wait_until(final, timeout, f"a status={'|'.join(statuses)} log line for "
                          f"<{recipient}>", interval=0.05, diagnostics=self.diagnostics)


# --- Dovecot ------------------------------------------------------------------------------------


class Dovecot:
    """A throwaway Dovecot (per test-peers.md) whose mail_location reads the Maildirs under
    `vmail` (laid out as vmail/%d/%n/Maildir). Tests use it through doveadm, which asks the
    running instance's auth service for the user, and through its LMTP server: the unix socket
    `lmtp_socket`, and 127.0.0.1:`lmtp_port` when `lmtp_port` is given.

    users: None accepts every address (a static userdb); otherwise {address: quota} names the
    only users (a passwd-file userdb; others get Dovecot's 550 5.1.1), each with a storage quota
    such as "1K" or None for none. A full quota fails temporarily (quota_full_tempfail), so LMTP
    answers 452 4.2.2.

    imap_port: also serve IMAP on 127.0.0.1:imap_port, without TLS, any password accepted."""

    def __init__(self, workdir, vmail, users=None, lmtp_port=None, imap_port=None):
        self.base = os.path.join(workdir, "dovecot")
        self.run_dir = os.path.join(self.base, "run")
        self.state_dir = os.path.join(self.base, "state")
        self.home = os.path.join(self.base, "home")
        self.log_path = os.path.join(self.base, "dovecot.log")
        self.config_path = os.path.join(self.base, "dovecot.conf")
        self.lmtp_socket = os.path.join(self.run_dir, "lmtp")
        self.lmtp_port = lmtp_port
        self.imap_port = imap_port
        for d in (self.base, self.run_dir, self.state_dir, self.home):
            os.makedirs(d, mode=0o755, exist_ok=True)
        if users is None:
            auth = f"""
passdb {{
  driver = static
  args = nopassword=y allow_all_users=yes
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={self.home}/%d/%n allow_all_users=yes
}}
"""
        else:
            users_file = os.path.join(self.base, "users")
            with open(users_file, "w") as f:
                for address, quota in users.items():
                    extra = f"userdb_quota_rule=*:storage={quota}" if quota else ""
                    f.write(f"{address}:{{PLAIN}}unused::::::{extra}\n")
            auth = f"""
mail_plugins = $mail_plugins quota
quota_full_tempfail = yes
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = {users_file}
}}
userdb {{
  driver = passwd-file
  args = {users_file}
  default_fields = uid=mail gid=mail home={self.home}/%d/%n
}}
"""
        inet = (f"""  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
""" if lmtp_port else "")
        imap = (f"""
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
auth_mechanisms = plain
disable_plaintext_auth = no
""" if imap_port else "")
        # Dovecot reads the store as `mail`, the user mailseal runs as in these tests
        # (Mailseal(user="mail")): README.Debian's setup (a), mail_uid = mailseal's user.
        config = f"""
base_dir = {self.run_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
protocols = lmtp{" imap" if imap_port else ""}
listen = 127.0.0.1
ssl = no
first_valid_uid = 1
mail_location = maildir:{vmail}/%d/%n/Maildir
{auth}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
{inet}}}
{imap}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
        with open(self.config_path, "w") as f:
            f.write(config)
        self.pid = None

    def diagnostics(self):
        return f"dovecot log:\n{tail(read_text(self.log_path))}"

    def start(self):
        proc, output = run_to_file(["dovecot", "-c", self.config_path],
                                   os.path.join(self.base, "commands.out"))
        if proc.returncode != 0:
            raise HarnessError(f"dovecot exited {proc.returncode}: {output}\n"
                               + self.diagnostics())
        pid_file = os.path.join(self.run_dir, "master.pid")
        self.pid = int(wait_until(lambda: read_text(pid_file).strip(), START_TIMEOUT,
                                  "dovecot master.pid", diagnostics=self.diagnostics))
        # The master creates its listeners before writing the pid; wait for the auth service
        # socket doveadm will use, so the first doveadm call does not race the start.
        wait_until(lambda: os.path.exists(os.path.join(self.run_dir, "auth-userdb")),
                   START_TIMEOUT, "dovecot auth-userdb socket", diagnostics=self.diagnostics)
        wait_until(lambda: os.path.exists(self.lmtp_socket), START_TIMEOUT,
                   "dovecot lmtp socket", diagnostics=self.diagnostics)
        if self.imap_port:
            def accepting():
                try:
                    socket.create_connection(("127.0.0.1", self.imap_port), timeout=1).close()
                    return True
                except OSError:
                    return False
            wait_until(accepting, START_TIMEOUT, "dovecot imap listener",
                       diagnostics=self.diagnostics)
        return self

    def connections(self):
        """How many LMTP connections Dovecot has accepted so far (its "Connect from" lines)."""
        return sum(1 for line in read_text(self.log_path).splitlines()
                   if "lmtp(" in line and "Connect from" in line)

    def stop(self):
        if self.pid is not None:
            stop_pid(self.pid, "dovecot")
            self.pid = None

    def doveadm(self, *args, timeout=60):
        proc = subprocess.run(["doveadm", "-c", self.config_path, *args],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
        if proc.returncode != 0:
            raise HarnessError(f"doveadm {' '.join(args)} exited {proc.returncode}: "
                               f"{proc.stderr.decode('utf-8', 'replace')}\n" + self.diagnostics())
        return proc.stdout

    def fetch(self, user, fields=("guid", "size.physical", "size.virtual", "text")):
        """Every message of user's INBOX as a dict of field -> bytes (sizes as int).

        Uses the pager formatter: records separated by a form feed line; each field starts
        with "name: " and the last field (`text` or `body`) runs to the end of the record.
        """
        out = self.doveadm("-f", "pager", "fetch", "-u", user, " ".join(fields),
                           "mailbox", "INBOX", "all")
        records = []
        for chunk in out.split(b"\x0c\n"):
            if not chunk.strip():
                continue
            records.append(self._parse_record(chunk, fields))
        return records

    @staticmethod
    def _parse_record(chunk, fields):
        record = {}
        rest = chunk
        for i, name in enumerate(fields):
            key = name.encode() + b":"
            if not rest.startswith(key):
                raise HarnessError(f"doveadm record field {name!r} not where expected: "
                                   f"{chunk[:500]!r}")
            rest = rest[len(key):]
            if i + 1 < len(fields):
                line, rest = rest.split(b"\n", 1)
                value = line.strip()
                record[name] = int(value) if name.startswith("size.") else value.decode()
            else:
                # Multi-line value: "name:\n" then the value, then the record's final newline.
                if rest.startswith(b" "):
                    rest = rest[1:]
                elif rest.startswith(b"\n"):
                    rest = rest[1:]
                record[name] = rest
        return record


# --- test base -----------------------------------------------------------------------------------


class ClassDaemonCopies:
    """For a test class with one daemon (`server`) delivering for SENDER into
    <workdir>/vmail/<domain>/<user>/Maildir: one transaction, and the copies it stored."""

    def deliver(self, recipients, data, server=None):
        with (server or self.server).raw() as client:
            client.lhlo()
            txn = client.transaction(SENDER, recipients, data)
            client.command("QUIT")
        return txn

    def stored(self, address):
        """The one file in address's new/, removed so the next test starts empty."""
        local, domain = address.split("@")
        files = maildir_files(os.path.join(self.workdir, "vmail", domain, local, "Maildir"),
                              "new")
        self.assertEqual(len(files), 1, f"{address}'s new/: {files}\n{self.server.diagnostics()}")
        data = read_bytes(files[0])
        os.unlink(files[0])
        return data

    def assertNothingStored(self, address):
        local, domain = address.split("@")
        maildir = os.path.join(self.workdir, "vmail", domain, local, "Maildir")
        for sub in ("new", "tmp"):
            self.assertEqual(maildir_files(maildir, sub), [],
                             f"{address}'s {sub}/ must stay empty")

    def assertPolicyTable(self, rows, data, assert_sealed):
        """Delivers `data` to every row's address in one transaction and checks each row:
        (address, code, enhanced code, "sealed", "plain" or None for nothing stored). A
        sealed copy is checked by assert_sealed(copy, data) and holds no "Secret body"."""
        txn = self.deliver([r[0] for r in rows], data)
        self.assertEqual(len(txn.finals), len(rows), repr(txn))
        for (address, code, enhanced, stored), reply in zip(rows, txn.finals):
            self.assertReply(reply, code, enhanced, rcpt=address, context=address)
            if stored is None:
                self.assertNothingStored(address)
                continue
            copy = self.stored(address)
            if stored == "sealed":
                assert_sealed(copy, data)
                self.assertNotIn(b"Secret body", copy)
            else:
                split_trace_headers(copy, data)
                self.assertIn(b"\nMailseal: plain; reason=no-key\n", copy)


class TestCase(unittest.TestCase):
    """Gives each test a temporary directory and stops everything it starts."""

    def shortDescription(self):
        # Report tests by name only; their docstrings explain, they do not name.
        return None

    def setUp(self):
        self.dir = make_test_dir()
        self.addCleanup(remove_test_dir, self.dir)

    def start_mailseal(self, overrides=None, env=None, user=None):
        server = Mailseal(self.dir, overrides, env, user)
        self.addCleanup(server.stop)
        return server.start()

    def start_postfix(self, transport, extra_main=None):
        postfix = Postfix(self.dir, transport, extra_main)
        self.addCleanup(postfix.stop)
        return postfix.start()

    def start_dovecot(self, vmail, users=None, lmtp_port=None, imap_port=None):
        dovecot = Dovecot(self.dir, vmail, users, lmtp_port, imap_port)
        self.addCleanup(dovecot.stop)
        return dovecot.start()

    def assertReply(self, reply, code, enhanced=None, rcpt=None, context=""):
        """reply has this code, enhanced status code and, for a per-recipient reply, the text
        prefix `<rcpt> ` after the enhanced code (common.md)."""
        want = f"{code}" + (f" {enhanced}" if enhanced else "") + (f" <{rcpt}> ..." if rcpt else "")
        msg = f"{context}: got {reply!r}, want {want}"
        self.assertEqual(reply.code, code, msg)
        if enhanced is not None:
            self.assertEqual(reply.enhanced, enhanced, msg)
        if rcpt is not None:
            text = reply.lines[0]
            if reply.enhanced:
                text = text[len(reply.enhanced):].lstrip(" ")
            self.assertTrue(text.startswith(f"<{rcpt}>"), msg)

    def assertDelivered(self, path, sender, recipient, sent, mailseal=b"plain; reason=no-key"):
        """path is a Maildir file holding `sent` as received with the three trace headers and
        the Mailseal: field (`mailseal`, by default a recipient without a key) in front, and
        its S=/W= fields are exact."""
        stored = read_bytes(path)
        headers = split_trace_headers(stored, sent)
        self.assertGreaterEqual(len(headers), 3, f"trace headers: got {headers!r}")
        self.assertEqual(headers[0], f"Return-Path: <{sender}>".encode(),
                         f"first header of {path}")
        self.assertEqual(headers[1], f"Delivered-To: {recipient}".encode(),
                         f"second header of {path}")
        self.assertTrue(headers[2].startswith(b"Received: "),
                        f"third header of {path}: got {headers[2]!r}, want Received:")
        self.assertEqual(headers[3:], [b"Mailseal: " + mailseal],
                         f"trace headers of {path}: got {headers!r}")
        self.assertNotIn(b"\r\n", stored, f"{path} must be stored with LF line ends")
        name = os.path.basename(path)
        self.assertRegex(name, MAILDIR_NAME, "Maildir file name")
        s, w = size_fields(path)
        self.assertEqual(s, len(stored), f"S= of {name}: got {s}, want file size {len(stored)}")
        self.assertEqual(w, crlf_size(stored),
                         f"W= of {name}: got {w}, want CRLF size {crlf_size(stored)}")
        return stored
