from portable_wait import cli

raise SystemExit(cli.main())
