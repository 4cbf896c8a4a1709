"""Build ``bench/data/factoid_debian.jsonl``: factoid questions on Debian's "Users and Groups in the Debian System".

The second evaluation corpus (issue 15): a documentation text, not a dictionary — the ``base-passwd`` package's
``users-and-groups.html`` (GPL-2; ``overlay_core/data/debian-users-groups/``). The questions were written by hand
from the document, in the forms a reader asks (which / what / who / why / where / stands for), after the
reasoner's rules were written and without tuning anything on them; every key is checked to occur in the
document's text. The unanswerable questions are about the same topic (users, groups, Debian) or off-topic, with
answers the document does not hold.

Usage: ``.venv/bin/python bench/make_factoid_debian.py`` (then build the corpus:
``overlay build overlay_core/data/debian-users-groups --home .overlay-debian`` and run
``bench/eval_factoid.py --set debian --home .overlay-debian``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "overlay_core" / "data" / "debian-users-groups" / "users-and-groups.html"
OUT = REPO / "bench" / "data" / "factoid_debian.jsonl"

QUESTIONS = [
    ("Which user is typically the superuser?", ["root"], "which"),
    ("Which daemons run as daemon.daemon?", ["portmap", "atd"], "which"),
    ("What does LSB 1.3 list the daemon user as?", ["legacy"], "what"),
    ("What did the sys user and group historically own?", ["kernel sources"], "what"),
    ("What is the shell of user sync?", ["/bin/sync"], "what"),
    ("Why are many games sgid to games?", ["high score"], "why"),
    ("Where does the man program write cat pages?", ["/var/cache/man"], "where"),
    ("What can users in the lp group access directly?", ["parallel ports"], "what"),
    ("Which group owns the mailboxes in /var/mail?", ["mail"], "which"),
    ("Which programs are typically sgid news?", ["inews"], "which"),
    ("Which subsystem uses the uucp user and group?", ["UUCP subsystem"], "which"),
    ("Which user does squid run as?", ["proxy"], "which"),
    ("Which program uses group proxy?", ["pdnsd"], "which"),
    ("Why does Majordomo have a statically allocated uid?", ["historical reasons"], "why"),
    ("Who owns Postgresql databases?", ["postgres"], "who"),
    ("Which user do some web servers run as?", ["www-data"], "which"),
    ("What uid did the operator user have?", ["37"], "what"),
    ("Which group is used by dump -n to notify logged-in operators?", ["operator"], "which"),
    ("Who owns mailing list archives and data?", ["list"], "who"),
    ("Why is a statically allocated user needed for irc?", ["bug in ircd"], "why"),
    ("What uid and gid did gnats have?", ["41"], "what"),
    ("As which user is root access from an NFS client performed when root-squashing is in use?", ["nobody"], "which"),
    ("Which daemon runs as the messagebus user?", ["dbus"], "which"),
    ("Which MTA uses the postfix user?", ["postfix"], "which"),
    ("What does GDM stand for?", ["GNOME Display Manager"], "stands-for"),
    ("Which package added the saned user?", ["sane-utils"], "which"),
    ("Which program uses the klog user?", ["klogd"], "which"),
    ("What is group adm used for?", ["system monitoring"], "what"),
    ("Where was /var/log historically?", ["/usr/adm"], "where"),
    ("Which programs use the tty group to write to other people's ttys?", ["write", "wall"], "which"),
    ("What is group disk mostly equivalent to?", ["root access"], "what"),
    ("Which files are readable by the kmem group?", ["/dev/kmem"], "which"),
    ("What does the dialout group give access to?", ["serial ports"], "what"),
    ("What does the group name dip stand for?", ["Dialup IP"], "stands-for"),
    ("Which tools can members of group dip use to make dialup connections?", ["pppd"], "which"),
    ("In which directory are the predefined dialup configuration files?", ["/etc/ppp/peers"], "which"),
    ("What is the voice group useful for?", ["answering machines"], "what"),
    ("Which package provides pkexec?", ["policykit-1"], "which"),
    ("Which directory holds the source code owned by the src group?", ["/usr/src"], "which"),
    ("Which file is readable by the shadow group?", ["/etc/shadow"], "which"),
    ("Which programs are setgid utmp?", ["terminal emulators"], "which"),
    ("Which program was the original implementor of group plugdev?", ["pmount"], "which"),
    ("Which options does pmount always mount with?", ["nodev"], "which"),
    ("Which directory can members of group staff modify without root privileges?", ["/usr/local"], "which"),
    ("In the traditional group system, which group is each user a member of?", ["users"], "which"),
    ("Which printer databases can lpadmin members modify?", ["foomatic"], "which"),
    ("Which files can users in the sasl group read and write?", ["/etc/sasldb"], "which"),
    ("Why is ssh-agent setgid to _ssh?", ["ptrace attacks"], "why"),
    ("What does membership in the libvirt group give?", ["full daemon access"], "what"),
    ("Which group is the cupsys user in?", ["lp"], "which"),
    ("Who wrote Users and Groups in the Debian System?", ["Joey Hess"], "who"),
    ("Which tool keeps the master passwd and group files in sync?", ["update-passwd"], "which"),
]
UNANSWERABLE = [
    "What is the uid of the postgres user?", "Who founded Debian?", "When was Debian 12 released?",
    "What port does sshd listen on?", "Which group can use the webcam?", "What is the default umask in Debian?",
    "How many groups does a new user join by default?", "Who maintains the sudo package?",
    "What is the gid of the audio group?", "Which user runs the cron daemon?", "What does NFS stand for?",
    "Which file stores user passwords on Windows?", "Who won the 2018 World Cup?", "What is the capital of France?",
    "When was the first version of systemd released?", "Which group controls Bluetooth devices?",
    "What does PAM stand for?", "Who invented the Linux kernel?", "What is the home directory of www-data?",
    "How many bits are in a byte?",
]


def document_text() -> str:
    from bs4 import BeautifulSoup

    return " ".join(BeautifulSoup(DOC.read_text(), "html.parser").get_text(" ").split())


def main() -> int:
    text = document_text().casefold()
    rows = []
    for i, (q, keys, kind) in enumerate(QUESTIONS):
        if not any(k.casefold() in text for k in keys):
            print(f"key {keys} of {q!r} is not in {DOC}", file=sys.stderr)
            return 1
        rows.append({"id": f"debian-{i:03d}", "question": q, "answers": keys, "kind": kind, "answerable": True,
                     "source": DOC.name})
    rows += [{"id": f"debian-u{i:02d}", "question": q, "answers": [], "kind": "unanswerable", "answerable": False,
              "source": None} for i, q in enumerate(UNANSWERABLE)]
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{OUT}: {len(QUESTIONS)} answerable, {len(UNANSWERABLE)} unanswerable")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
