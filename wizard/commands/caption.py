"""`caption-wizard caption RUN_DIR_OR_MODEL IMAGE_OR_FOLDER...`: captions for images (wizard.caption does
the work; this prints the table, the JSON lines or the --out file)."""

from __future__ import annotations

from wizard.caption import GENERATION_FLAGS, caption_images
from wizard.fsnames import json_text, shown


def cmd_caption(args) -> int:
    from rich.table import Table

    from rich.markup import escape

    from wizard.console import console, console_err
    from wizard.ui.progress import RichProgress
    from wizard.fsutil import check_new_file, write_user_file

    if args.out:  # before any work: never overwrite without --force; the folder must be writable
        check_new_file(args.out, force=getattr(args, "force", False))
    overrides = {k: getattr(args, k, None) for k in GENERATION_FLAGS}
    with console_err.status("loading the model and captioning...", spinner="dots") as status:
        def on_batch(done: int, total: int) -> None:
            status.update(f"captioning: {done}/{total} image(s)...")

        results = caption_images(args.source, args.images, prompt=args.prompt, batch_size=args.batch_size,
                                 progress=RichProgress(), on_batch=on_batch, **overrides)
    for path, _, error in results:
        if error:
            console_err.print(f"[yellow]skipped[/] {escape(shown(path))}: {escape(shown(error))}", soft_wrap=True)
    done = [(str(path), caption) for path, caption, error in results if error is None]
    if args.json:
        for image, caption in done:
            print(json_text({"image": image, "caption": caption}), flush=True)
    elif done:
        table = Table("image", "caption", show_lines=False)
        for image, caption in done:
            table.add_row(escape(shown(image)), escape(caption))
        console.print(table)
    if args.out and done:
        # a name that is not UTF-8 is written as Python's surrogateescape ("caf\udce9.png"): json.loads
        # and os.fsencode give back its bytes
        text = "".join(json_text({"image": i, "caption": c}) + "\n" for i, c in done)
        write_user_file(args.out, text, hint="the captions are printed above; write them elsewhere with --out FILE")
        console_err.print(f"wrote {len(done)} caption(s) to {shown(args.out)}", markup=False)
    if not done:
        console_err.print(f"[bold red]error:[/] none of the {len(results)} image(s) could be read; "
                          "nothing captioned", soft_wrap=True)
        return 2
    return 0
