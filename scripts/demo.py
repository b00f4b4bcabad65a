"""The demo behind scripts/demo: Postfix -> mailseal (LMTP) -> Maildir -> Dovecot.

It reuses the integration tests' harness, so the demo and the tests start the peers the same way.
"""

import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402

DEMO_DIR = os.environ.get("MAILSEAL_DEMO_DIR", "/tmp/mailseal-demo")


def say(text=""):
    print(text, flush=True)


def stop_leftovers(workdir):
    """A demo left running by --keep is stopped before a new one starts."""
    postfix_conf = os.path.join(workdir, "postfix", "etc")
    if os.path.isdir(postfix_conf):
        subprocess.run(["postfix", "-c", postfix_conf, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    for pid_file, command in ((os.path.join(workdir, "mailseal.pid"), "mailseal"),
                              (os.path.join(workdir, "dovecot", "run", "master.pid"), "dovecot")):
        try:
            harness.stop_pid(int(harness.read_text(pid_file).strip()), command)
        except ValueError:
            pass


def message(to, subject, body):
    return (f"From: Demo Sender <{harness.SENDER}>\n"
            f"To: {to}\n"
            f"Subject: {subject}\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            "\n"
            f"{body}\n").encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mailseal", required=True, help="the mailseal binary")
    parser.add_argument("--keep", action="store_true", help="leave the daemons running")
    args = parser.parse_args()
    harness.MAILSEAL_BIN = os.path.abspath(args.mailseal)

    stop_leftovers(DEMO_DIR)
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    os.makedirs(DEMO_DIR, mode=0o755)
    os.chmod(DEMO_DIR, 0o755)

    mailseal = harness.Mailseal(DEMO_DIR)
    postfix = dovecot = None
    try:
        mailseal.start()
        with open(os.path.join(DEMO_DIR, "mailseal.pid"), "w") as f:
            f.write(f"{mailseal.proc.pid}\n")
        say(f"mailseal is listening on {mailseal.unix_path} and 127.0.0.1:{mailseal.port}")
        say(f"  configuration: {mailseal.config_path}")

        postfix = harness.Postfix(DEMO_DIR, f"lmtp:unix:{mailseal.unix_path}").start()
        say(f"Postfix routes {harness.DOMAIN} to it (virtual_transport = "
            f"lmtp:unix:{mailseal.unix_path})")
        say()

        recipients = [f"alice@{harness.DOMAIN}", f"bob+newsletter@{harness.DOMAIN}"]
        postfix.sendmail(harness.SENDER, recipients,
                         message(", ".join(recipients), "Hello from the mailseal demo",
                                 "Delivered by Postfix through mailseal. Grüße!"))
        say("Postfix's log:")
        for rcpt in recipients:
            say("  " + postfix.wait_status(rcpt)["line"])

        swaks = subprocess.run(
            ["swaks", "--protocol", "LMTP", "--socket", mailseal.unix_path,
             "--from", harness.SENDER, "--to", f"carol@{harness.DOMAIN}",
             "--header", "Subject: Straight over LMTP with swaks"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        say()
        say("swaks over LMTP, the server's replies to DATA:")
        for line in swaks.stdout.splitlines():
            if line.startswith("<-") and " Delivered" in line:
                say("  " + line)
        if swaks.returncode != 0:
            raise harness.HarnessError("swaks failed:\n" + swaks.stdout + swaks.stderr)

        say()
        say("mailseal's delivery log:")
        for line in mailseal.log().splitlines():
            if "event=delivery" in line:
                say("  " + line)

        say()
        say("What landed (file names carry Dovecot's exact S= and W= sizes):")
        for user in ("alice", "bob", "carol"):
            for path in harness.maildir_files(mailseal.maildir(user)):
                say(f"  {path}")

        harness.Dovecot.chown_for_dovecot(mailseal.vmail)
        dovecot = harness.Dovecot(DEMO_DIR, mailseal.vmail).start()
        say()
        say("Dovecot reads them (doveadm fetch):")
        for user in ("alice", "bob", "carol"):
            for record in dovecot.fetch(f"{user}@{harness.DOMAIN}",
                                        ("size.physical", "size.virtual", "hdr.subject")):
                say(f"  {user}: size.physical={record['size.physical']} "
                    f"size.virtual={record['size.virtual']} "
                    f"subject={record['hdr.subject'].strip().decode()}")

        first = harness.maildir_files(mailseal.maildir("alice"))[0]
        say()
        say(f"The top of {os.path.basename(first)}:")
        with open(first, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines()[:6]:
                say("  " + line)
    finally:
        if not args.keep:
            for peer in (dovecot, postfix, mailseal):
                if peer is not None:
                    peer.stop()
    if args.keep:
        say()
        say(f"Left running under {DEMO_DIR}; scripts/demo stops them before it starts again.")
        say(f"To stop them now: kill {mailseal.proc.pid} {dovecot.pid}; "
            f"postfix -c {postfix.config_dir} stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
