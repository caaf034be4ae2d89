from taskflowd.cli import main

raise SystemExit(main())
