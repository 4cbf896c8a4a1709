"""Retrieval probe of the embedders a knowledge base can be built with (issue 16): Russian, English, across.

32 hand-written topics from computing, each a short passage in English and its Russian translation, and a
question in each language that does not copy the passage's wording. For every embedder of
:data:`overlay_core.embeddings.EMBEDDERS` the passages of one language are embedded as passages and the questions
of one language as questions (:meth:`encode_query`), and each question's passages are ranked by cosine:

* ``ru->ru``: Russian questions over the 32 Russian passages;
* ``en->en``: English questions over the 32 English passages;
* ``ru->en``: Russian questions over the 32 English passages (a Russian user, English documents);
* ``ru->mixed``: Russian questions over all 64 passages: a hit@1 is the right topic in either language.

hit@1 / hit@3: the question's own passage is first / among the first three. Speed: passages per second of the
Russian Debian FAQ (``overlay_core/data/debian-faq-ru``) and of the English "Users and Groups in the Debian
System" (``overlay_core/data/debian-users-groups``), as ``overlay build`` chunks them (the first ``--n-speed``
passages of each), embedded in batches of 32 after one warm-up call; wall time on this machine as it is (2 shared
cores: the numbers move with the load — run it twice before believing a difference under ~30 %).

Usage: ``.venv/bin/python bench/embedders.py [--embedders minilm,use-multilingual,e5-small] [--n-speed 200]``.
Prints a table, then ONE JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# (English passage, Russian passage, English question, Russian question)
TOPICS: list[tuple[str, str, str, str]] = [
    ("TCP is a connection-oriented transport protocol that delivers a stream of bytes reliably and in order.",
     "TCP — это транспортный протокол с установлением соединения, который надёжно и по порядку доставляет поток байтов.",
     "Which protocol guarantees that bytes arrive in order?",
     "Какой протокол гарантирует, что байты придут по порядку?"),
    ("DNS translates human-readable host names such as example.org into IP addresses.",
     "DNS переводит понятные человеку имена хостов, например example.org, в IP-адреса.",
     "What turns a domain name into a numeric address?",
     "Что превращает доменное имя в числовой адрес?"),
    ("A compiler translates a program written in a high-level language into machine code before it runs.",
     "Компилятор переводит программу на языке высокого уровня в машинный код до её запуска.",
     "What converts source code to machine instructions ahead of execution?",
     "Что преобразует исходный текст в машинные команды до выполнения?"),
    ("A hash table stores key-value pairs and finds a value by computing an index from its key.",
     "Хеш-таблица хранит пары ключ-значение и находит значение, вычисляя индекс по ключу.",
     "Which data structure looks up values through a function of the key?",
     "Какая структура данных ищет значения через функцию от ключа?"),
    ("A deadlock happens when two processes each wait for a resource that the other one holds.",
     "Взаимная блокировка возникает, когда два процесса ждут ресурс, который удерживает другой.",
     "What is it called when processes wait on each other forever?",
     "Как называется ситуация, когда процессы бесконечно ждут друг друга?"),
    ("The Linux kernel was first released by Linus Torvalds in 1991 as a hobby project.",
     "Ядро Linux впервые выпустил Линус Торвальдс в 1991 году как любительский проект.",
     "Who published the first version of Linux and when?",
     "Кто и когда выпустил первую версию Linux?"),
    ("A firewall filters network traffic and blocks connections that its rules do not allow.",
     "Межсетевой экран фильтрует сетевой трафик и блокирует соединения, которые не разрешены его правилами.",
     "What stops unwanted connections from reaching a network?",
     "Что не пускает нежелательные соединения в сеть?"),
    ("Git is a distributed version control system: every clone holds the full history of the project.",
     "Git — распределённая система управления версиями: каждая копия хранит всю историю проекта.",
     "Which tool keeps a complete history of changes in every copy of a repository?",
     "Какой инструмент хранит полную историю изменений в каждой копии репозитория?"),
    ("A stack is a last-in, first-out list: the element pushed last is popped first.",
     "Стек — это список по принципу «последним пришёл — первым ушёл»: последний добавленный элемент извлекается первым.",
     "Which structure returns the most recently added item first?",
     "Какая структура первой возвращает последний добавленный элемент?"),
    ("A queue serves its elements in arrival order: the first one added is the first one removed.",
     "Очередь обслуживает элементы в порядке поступления: первым удаляется тот, кто был добавлен первым.",
     "Which structure hands out items in the order they came in?",
     "Какая структура выдаёт элементы в том порядке, в каком они пришли?"),
    ("RAM is volatile memory: its contents are lost when the computer is switched off.",
     "Оперативная память энергозависима: её содержимое теряется при выключении компьютера.",
     "Which memory forgets everything when the power goes off?",
     "Какая память всё забывает при отключении питания?"),
    ("Public-key cryptography uses a pair of keys: one to encrypt, published, and one to decrypt, kept secret.",
     "Криптография с открытым ключом использует пару ключей: открытый для шифрования и секретный для расшифровки.",
     "How can anyone encrypt a message that only its owner can read?",
     "Как любой может зашифровать сообщение, которое прочтёт только владелец?"),
    ("HTTP is the protocol web browsers use to request pages from web servers; it normally uses port 80.",
     "HTTP — протокол, которым веб-браузеры запрашивают страницы у веб-серверов; обычно он использует порт 80.",
     "Which protocol does a browser speak to fetch a web page?",
     "На каком протоколе браузер запрашивает веб-страницу?"),
    ("A virtual machine emulates a complete computer, so that one physical host can run several operating systems.",
     "Виртуальная машина эмулирует целый компьютер, так что на одном физическом хосте работают несколько ОС.",
     "How can one server run several operating systems at once?",
     "Как на одном сервере одновременно запустить несколько операционных систем?"),
    ("Garbage collection frees memory automatically once the program can no longer reach an object.",
     "Сборка мусора автоматически освобождает память, когда программа больше не может обратиться к объекту.",
     "What reclaims unused objects without the programmer freeing them?",
     "Что освобождает ненужные объекты без участия программиста?"),
    ("SQL is the language relational databases use to query and change data held in tables.",
     "SQL — язык, на котором реляционные базы данных выбирают и изменяют данные в таблицах.",
     "In which language do you ask a relational database for rows?",
     "На каком языке запрашивают строки у реляционной базы данных?"),
    ("A cache keeps copies of recently used data in fast storage to avoid fetching them again from slow storage.",
     "Кэш хранит копии недавно использованных данных в быстрой памяти, чтобы не читать их снова из медленной.",
     "What speeds up repeated reads by keeping data close at hand?",
     "Что ускоряет повторное чтение, держа данные под рукой?"),
    ("Unicode assigns a unique number to every character of every writing system; UTF-8 encodes these numbers as bytes.",
     "Юникод присваивает уникальный номер каждому символу любой письменности; UTF-8 кодирует эти номера байтами.",
     "Which standard gives every letter of every alphabet its own code?",
     "Какой стандарт даёт каждой букве любого алфавита собственный код?"),
    ("A router forwards packets between networks, choosing for each packet the next hop towards its destination.",
     "Маршрутизатор пересылает пакеты между сетями, выбирая для каждого следующий узел на пути к адресату.",
     "Which device decides where a packet goes next between networks?",
     "Какое устройство решает, куда дальше отправить пакет между сетями?"),
    ("Recursion is when a function calls itself on a smaller part of the problem until it reaches a base case.",
     "Рекурсия — это когда функция вызывает саму себя для меньшей части задачи, пока не дойдёт до базового случая.",
     "What is it called when a function invokes itself?",
     "Как называется вызов функцией самой себя?"),
    ("A backup is a copy of data kept elsewhere so that it can be restored after a loss.",
     "Резервная копия — копия данных, хранимая в другом месте, чтобы их можно было восстановить после потери.",
     "How do you make sure lost files can be brought back?",
     "Как сделать так, чтобы потерянные файлы можно было вернуть?"),
    ("The shell is the command interpreter: it reads the commands a user types and starts the programs they name.",
     "Оболочка — это командный интерпретатор: она читает команды пользователя и запускает названные в них программы.",
     "Which program runs the commands typed in a terminal?",
     "Какая программа выполняет команды, набранные в терминале?"),
    ("A package manager installs, upgrades and removes software together with the libraries it depends on.",
     "Менеджер пакетов устанавливает, обновляет и удаляет программы вместе с библиотеками, от которых они зависят.",
     "What installs programs and their dependencies for you?",
     "Что устанавливает программы вместе с их зависимостями?"),
    ("An operating system manages the hardware and gives programs common services such as files and processes.",
     "Операционная система управляет оборудованием и предоставляет программам общие службы, например файлы и процессы.",
     "Which software sits between applications and the hardware?",
     "Какое ПО находится между приложениями и оборудованием?"),
    ("Python is an interpreted programming language created by Guido van Rossum, known for its readable syntax.",
     "Python — интерпретируемый язык программирования, созданный Гвидо ван Россумом и известный понятным синтаксисом.",
     "Which language did Guido van Rossum design?",
     "Какой язык придумал Гвидо ван Россум?"),
    ("Email is delivered between mail servers with SMTP; users read it with IMAP or POP3.",
     "Электронная почта передаётся между почтовыми серверами по SMTP, а читают её по IMAP или POP3.",
     "Which protocol moves mail from one server to another?",
     "По какому протоколу письма идут от сервера к серверу?"),
    ("A binary search finds an item in a sorted array by halving the range that can hold it at every step.",
     "Двоичный поиск находит элемент в отсортированном массиве, на каждом шаге деля диапазон поиска пополам.",
     "How do you find a value in a sorted list quickly?",
     "Как быстро найти значение в отсортированном списке?"),
    ("Open source software comes with its source code and a licence that lets anyone study, change and share it.",
     "Открытое ПО распространяется с исходным кодом и лицензией, позволяющей любому изучать, менять и распространять его.",
     "What kind of software may anyone modify and redistribute?",
     "Какие программы любой может изменять и распространять?"),
    ("A CPU executes instructions; its clock frequency, measured in gigahertz, sets how many cycles it runs per second.",
     "Процессор выполняет команды; его тактовая частота в гигагерцах задаёт число циклов в секунду.",
     "What does the gigahertz figure of a processor measure?",
     "Что измеряет число гигагерц у процессора?"),
    ("Encryption of a disk protects the data on a stolen laptop: without the passphrase the files cannot be read.",
     "Шифрование диска защищает данные украденного ноутбука: без парольной фразы файлы не прочитать.",
     "How can files on a stolen laptop be kept unreadable?",
     "Как сделать файлы на украденном ноутбуке нечитаемыми?"),
    ("A thread is a sequence of instructions inside a process; threads of one process share its memory.",
     "Поток — это последовательность команд внутри процесса; потоки одного процесса разделяют его память.",
     "What runs inside a process and shares its memory with its siblings?",
     "Что выполняется внутри процесса и делит его память с соседями?"),
    ("Debian is a free operating system founded by Ian Murdock in 1993 and developed by volunteers.",
     "Debian — свободная операционная система, основанная Яном Мердоком в 1993 году и развиваемая добровольцами.",
     "Who started the Debian project?",
     "Кто основал проект Debian?"),
]


def ranks(q: np.ndarray, p: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """0-based rank of each question's gold passage (row i of ``q`` against all rows of ``p``)."""
    sims = q @ p.T
    gold_sim = sims[np.arange(len(q)), gold]
    return (sims > gold_sim[:, None]).sum(axis=1)


def probe(enc) -> dict:
    en_p, ru_p, en_q, ru_q = (list(col) for col in zip(*TOPICS))
    n = len(TOPICS)
    P = {"en": enc.encode(en_p), "ru": enc.encode(ru_p)}
    Q = {"en": enc.encode_query(en_q), "ru": enc.encode_query(ru_q)}
    gold = np.arange(n)
    out = {}
    for name, q, p in (("ru->ru", "ru", "ru"), ("en->en", "en", "en"), ("ru->en", "ru", "en")):
        r = ranks(Q[q], P[p], gold)
        out[name] = {"hit@1": float(np.mean(r < 1)), "hit@3": float(np.mean(r < 3))}
    # both languages in one pool: the best passage must be the topic's, in either language
    pool = np.vstack([P["ru"], P["en"]])
    sims = Q["ru"] @ pool.T
    order = np.argsort(-sims, axis=1)
    topic = order % n
    out["ru->mixed"] = {"hit@1": float(np.mean(topic[:, 0] == gold)),
                        "hit@3": float(np.mean([(topic[i, :3] == i).any() for i in range(n)]))}
    return out


def speed(enc, texts: list[str]) -> float:
    enc.encode(texts[:4])  # warm-up: lazy loading, thread pools
    t0 = time.perf_counter()
    for i in range(0, len(texts), 32):
        enc.encode(texts[i : i + 32])
    return len(texts) / (time.perf_counter() - t0)


def corpus_passages(folder: str, pattern: str, n: int) -> list[str]:
    """The first ``n`` passages of a bundled corpus as ``overlay build`` chunks it (title pages left out)."""
    from overlay_core.documents import load_paths

    files = sorted(str(f) for f in (REPO / "overlay_core" / "data" / folder).glob(pattern)
                   if f.name != "index.ru.html")
    passages, _ = load_paths(files)
    return [p.text for p in passages[:n]]


def main(argv=None) -> int:
    from overlay_core.embeddings import EMBEDDERS, get_encoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedders", default=",".join(EMBEDDERS))
    ap.add_argument("--n-speed", type=int, default=100, help="passages of each corpus embedded for the speed figures")
    a = ap.parse_args(argv)
    keys = [k for k in a.embedders.split(",") if k]
    texts = {"ru": corpus_passages("debian-faq-ru", "*.ru.html", a.n_speed),
             "en": corpus_passages("debian-users-groups", "users-and-groups.html", a.n_speed)}
    res = {"n_topics": len(TOPICS), "n_speed_passages": {k: len(v) for k, v in texts.items()},
           "mean_speed_passage_chars": {k: round(sum(map(len, v)) / max(len(v), 1), 1) for k, v in texts.items()},
           "embedders": {}}
    for k in keys:
        t0 = time.perf_counter()
        enc = get_encoder(embedder=k)
        enc.encode(["warm"])
        load_s = time.perf_counter() - t0
        r = probe(enc)
        r["passages_per_s"] = {lang: round(speed(enc, t), 1) for lang, t in texts.items()}
        r["load_s"] = round(load_s, 2)
        res["embedders"][k] = r
    n, chars = res["n_speed_passages"], res["mean_speed_passage_chars"]
    print(f"\nEmbedder retrieval probe: {len(TOPICS)} topics (hit@1 / hit@3); speed in passages/s on {n['ru']} "
          f"Russian FAQ passages ({chars['ru']} characters on average) and {n['en']} English ones ({chars['en']})")
    cols = ("ru->ru", "en->en", "ru->en", "ru->mixed")
    print("| embedder | " + " | ".join(cols) + " | RU passages/s | EN passages/s | load s |\n|---|"
          + "---|" * (len(cols) + 3))
    for k, r in res["embedders"].items():
        print(f"| {k} | " + " | ".join(f"{r[c]['hit@1']:.2f} / {r[c]['hit@3']:.2f}" for c in cols)
              + f" | {r['passages_per_s']['ru']} | {r['passages_per_s']['en']} | {r['load_s']} |")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
