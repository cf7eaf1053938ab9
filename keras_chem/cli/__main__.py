from keras_chem.cli.app import main

main()
