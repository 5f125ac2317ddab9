from sep2gw.cli import main

raise SystemExit(main())
