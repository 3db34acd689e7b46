"""Command line of the course, called by the ``./dpe`` script at the repository root."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

from dpe_pipeline.settings import ensure_env_file, project_dir


def cmd_up(args: argparse.Namespace) -> int:
    """Bring the stack up; with no service named, also run the main job once (idempotent)."""
    from dpe_pipeline import stack

    main_job = None
    if not args.services and not args.no_pipeline:
        from dpe_pipeline import pipeline

        main_job = pipeline.run_main_job_if_needed
    return stack.up(args.services or None, after_start=main_job)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from dpe_pipeline import pipeline

    return pipeline.main(["all"])


def cmd_reset(args: argparse.Namespace) -> int:
    from dpe_pipeline import stack

    if not args.yes:
        answer = input(
            "Effacer toutes les données de la pile (bases, topics, lac, journaux, fichiers et DAG des TP) ? [o/N] "
        )
        if answer.strip().lower() not in ("o", "oui", "y", "yes"):
            print("Rien n'a été effacé.")
            return 1
    return stack.reset(new_env=args.new_env)


def cmd_down(args: argparse.Namespace) -> int:
    from dpe_pipeline import stack

    return stack.down()


def cmd_status(args: argparse.Namespace) -> int:
    from dpe_pipeline import stack

    return stack.status()


def cmd_logs(args: argparse.Namespace) -> int:
    from dpe_pipeline import stack

    return stack.logs(args.service, follow=args.follow)


def cmd_test(args: argparse.Namespace) -> int:
    """Run every test (unit, integration, notebooks, lint); services start on demand."""
    command = [sys.executable, "-m", "pytest", *args.pytest_args]
    return subprocess.call(command, cwd=project_dir())


def cmd_labs(args: argparse.Namespace) -> int:
    from dpe_pipeline import labgen

    return labgen.main(["--check"] * args.check + ["--force"] * args.force)


def cmd_snapshot(args: argparse.Namespace) -> int:
    from dpe_pipeline import snapshot

    return snapshot.main(args.source)


def cmd_slides(args: argparse.Namespace) -> int:
    from dpe_pipeline import slides

    return slides.main()


def quiet_client_libraries() -> None:
    """kafka-python logs every connection and py4j every Java call at INFO: only their warnings."""
    for name in ("kafka", "py4j"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./dpe", description="Cours « pipeline de données DPE ».")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="démarre la pile (tous les services, ou ceux nommés) et JupyterLab")
    up.add_argument("services", nargs="*", help="services à démarrer (défaut : tous, puis le pipeline principal)")
    up.add_argument("--no-pipeline", action="store_true", help="ne pas lancer le pipeline principal après le démarrage")
    up.set_defaults(func=cmd_up)

    pipe = sub.add_parser("pipeline", help="relance le pipeline principal de bout en bout (ADEME → tableau de bord)")
    pipe.set_defaults(func=cmd_pipeline)

    sub.add_parser("down", help="arrête tout ce que la pile a démarré").set_defaults(func=cmd_down)
    reset = sub.add_parser("reset", help="arrête la pile et efface ses données (entre deux groupes d'étudiants)")
    reset.add_argument("--yes", action="store_true", help="ne pas demander de confirmation")
    reset.add_argument("--new-env", action="store_true", help="recrée aussi .env avec de nouveaux secrets")
    reset.set_defaults(func=cmd_reset)
    sub.add_parser("status", help="état et santé de chaque service").set_defaults(func=cmd_status)

    logs = sub.add_parser("logs", help="journal d'un service")
    logs.add_argument("service", nargs="?", help="nom du service (sans nom : la liste des services)")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(func=cmd_logs)

    test = sub.add_parser("test", help="lance tous les tests (démarre les services nécessaires)")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments passés à pytest")
    test.set_defaults(func=cmd_test)

    labs = sub.add_parser("labs", help="(enseignant) régénère labs/ depuis solutions/")
    labs.add_argument("--check", action="store_true", help="échoue si labs/ n'est pas à jour")
    labs.add_argument("--force", action="store_true", help="écrase aussi les labs déjà exécutés par un étudiant")
    labs.set_defaults(func=cmd_labs)

    slides = sub.add_parser("slides", help="exporte les notebooks de cours en diapositives HTML hors ligne (slides/)")
    slides.set_defaults(func=cmd_slides)

    snap = sub.add_parser("snapshot", help="reconstruit data/ademe depuis les CSV sources")
    snap.add_argument("source", nargs="?", default=None, help="dossier des CSV (défaut : ../shared/data/ademe)")
    snap.set_defaults(func=cmd_snapshot)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("DPE_LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    quiet_client_libraries()
    args = build_parser().parse_args(argv)  # --help and usage errors write nothing
    ensure_env_file()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
